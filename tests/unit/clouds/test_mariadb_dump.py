"""What Doppel reads from a mariadb-dump stream as it passes (rows per table, whether it ended), and how it calls the
tools: no server needed."""
from __future__ import annotations

from clouds.databases.mariadb import RowCounter, _tool
from clouds.databases.servers import Server

DUMP = rb"""/*M!999999\- enable the sandbox mode */
CREATE TABLE `plain` (
  `i` int(11) DEFAULT NULL
);
CREATE TABLE `odd``name` (
  `s` text
);
CREATE TABLE `empty` (
  `i` int(11)
);
INSERT INTO `plain` VALUES
(1),
(2),
(3);
INSERT INTO `odd``name` VALUES
('a),(b'),
('it\'s ),( still one\\'),
('semi;'),
(0x2829);
INSERT INTO `plain` VALUES (4),(5),(6);
INSERT INTO `odd``name` VALUES ('x),(y'),('\'),('),(0x28),('z;');
commit;
-- Dump completed
"""


def counted(blocks) -> RowCounter:
    counter = RowCounter()
    for block in blocks:
        counter.feed(block)
    return counter


def test_rows_are_counted_per_table_whatever_the_strings_hold_and_wherever_the_blocks_split():
    whole = counted([DUMP])
    assert whole.tables == {"plain": 6, "odd`name": 8, "empty": 0}
    assert whole.complete()
    for size in (1, 7, 64):
        pieces = [DUMP[i:i + size] for i in range(0, len(DUMP), size)]
        assert counted(pieces).tables == whole.tables


def test_a_dump_without_its_last_line_is_not_complete():
    assert not counted([DUMP[:DUMP.rindex(b"-- Dump")]]).complete()
    assert not counted([DUMP[:len(DUMP) // 2]]).complete()


def test_the_tools_get_no_password_on_their_command_line_only_in_mysql_pwd(monkeypatch):
    monkeypatch.setenv("SHOP_MARIADB_PASSWORD", "s3cret-value")
    monkeypatch.setenv("PGPASSWORD", "another")
    server = Server("mariadb", "shop", host="db.example", port=3307, password_env="SHOP_MARIADB_PASSWORD")

    command = _tool(server, "mariadb-dump", "--single-transaction", "shop")
    env = server.tool_env()

    assert "s3cret-value" not in " ".join(command)
    assert command[:2] == ["mariadb-dump", "--no-defaults"]  # no option file adds to or overrides what is asked
    assert env["MYSQL_PWD"] == "s3cret-value" and "PGPASSWORD" not in env
