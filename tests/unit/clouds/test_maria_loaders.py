"""How one mariadb-dump stream is cut into header, table sections and tail and spread over several loaders: real
processes (a small Python loader that keeps what it is sent), no server."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clouds.databases.maria_loaders import HEADER, TAIL, SectionRouter, load
from clouds.databases.servers import DatabaseError

HEAD = b"""/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
--
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;

--
"""
SECTIONS = [
    b"""-- Table structure for table `a`
--

CREATE TABLE `a` (`id` int(11) NOT NULL);
INSERT INTO `a` VALUES
(1),
(2);
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER a_ins AFTER INSERT ON a FOR EACH ROW INSERT INTO audit VALUES (NEW.id) */;;
DELIMITER ;

--
""",
    b"""-- Temporary table structure for view `ab`
--

/*!50001 CREATE VIEW `ab` AS SELECT
 NULL AS `id` */;

--
""",
    b"""-- Table structure for table `b`
--

CREATE TABLE `b` (`s` text);
INSERT INTO `b` VALUES
('-- Table structure for table `x` (a string: its newline would be escaped)'),
('\\n-- Dumping routines');

--
"""]
TAIL_TEXT = b"""-- Dumping routines for database 'shop'
--
DELIMITER ;;
CREATE FUNCTION `twice`(x int) RETURNS int(11)
-- Table structure for table `not a cut`: in the tail nothing is cut any more
RETURN 2 * x
;;
DELIMITER ;

--
-- Final view structure for view `ab`
--

/*!50001 VIEW `ab` AS select `a`.`id` AS `id` from `a` */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;

-- Dump completed
"""
DUMP = HEAD + b"".join(SECTIONS) + TAIL_TEXT


def routed(blocks) -> dict:
    """The bytes each part got, in order."""
    router, parts = SectionRouter(), {}
    for block in blocks:
        for part, piece in router.feed(block):
            parts[part] = parts.get(part, b"") + piece
    for part, piece in router.close():
        parts[part] = parts.get(part, b"") + piece
    return parts


def cuts_in_every_marker() -> list[list[bytes]]:
    """The dump cut once inside each marker (after its newline, in its middle, one byte before its end), and in
    blocks of a few sizes."""
    cuts = []
    for marker in (b"\n-- Table structure for table ", b"\n-- Temporary table", b"\n-- Dumping routines"):
        at = DUMP.index(marker)
        for inside in (1, 3, len(marker) // 2, len(marker) - 1):
            cuts.append([DUMP[:at + inside], DUMP[at + inside:]])
    for size in (1, 2, 5, 39, 40, 41, 64, 1 << 20):
        cuts.append([DUMP[i:i + size] for i in range(0, len(DUMP), size)])
    return cuts


@pytest.mark.parametrize("blocks", cuts_in_every_marker())
def test_the_dump_is_cut_at_its_section_markers_wherever_the_blocks_split_them(blocks):
    parts = routed(blocks)

    assert parts == {HEADER: HEAD, 0: SECTIONS[0], 1: SECTIONS[1], 2: SECTIONS[2], TAIL: TAIL_TEXT}


def test_a_dump_without_views_or_routines_keeps_its_footer_with_the_last_table():
    footer = b"/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n-- Dump completed\n"

    parts = routed([HEAD + SECTIONS[0] + footer])

    assert parts == {HEADER: HEAD, 0: SECTIONS[0] + footer}


LOADER = """
import os, sys, pathlib
here = pathlib.Path(sys.argv[1])
received, finished_then = b"", None
while block := os.read(0, 4096):
    received += block
    if finished_then is None and b"-- Dumping routines for" in received:
        finished_then = sorted(p.stem for p in here.glob("*.finished"))
(here / f"{os.getpid()}.sql").write_bytes(received)
if finished_then is not None:
    (here / f"{os.getpid()}.tail").write_text(" ".join(finished_then))
(here / f"{os.getpid()}.finished").touch()
"""


def dump_command(data: bytes, tmp_path: Path, fail: str = "") -> list[str]:
    (tmp_path / "dump.sql").write_bytes(data)
    script = f"import sys; sys.stdout.buffer.write(open({str(tmp_path / 'dump.sql')!r}, 'rb').read()); {fail}"
    return [sys.executable, "-c", script]


def test_every_loader_gets_the_header_each_section_goes_whole_to_one_and_the_tail_waits_for_the_others(tmp_path):
    (tmp_path / "out").mkdir()

    load(dump_command(DUMP, tmp_path), {}, [sys.executable, "-c", LOADER, str(tmp_path / "out")], {}, loaders=3,
         chunk=7)

    received = {path.stem: path.read_bytes() for path in (tmp_path / "out").glob("*.sql")}
    assert len(received) == 3 and all(sql.startswith(HEAD) for sql in received.values())
    for section in SECTIONS:
        assert sum(section in sql for sql in received.values()) == 1
    assert sorted(len(sql) > len(HEAD) for sql in received.values()) == [True] * 3  # fewest bytes sent: spread
    tails = list((tmp_path / "out").glob("*.tail"))
    assert len(tails) == 1 and received[tails[0].stem].endswith(TAIL_TEXT)
    assert sorted(tails[0].read_text().split()) == sorted(set(received) - {tails[0].stem})


def test_a_loader_that_fails_fails_the_load_with_its_message_and_ends_the_rest(tmp_path):
    failing = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); "
               "sys.exit('ERROR 1146 (42S02) at line 3: Table b does not exist')"]
    big = HEAD + SECTIONS[0] * 200_000  # far more than the pipes and queues hold: a writer that waits must stop

    with pytest.raises(DatabaseError, match=r"mariadb failed: ERROR 1146 .* Table b does not exist"):
        load(dump_command(big, tmp_path), {}, failing, {}, loaders=2)


def test_a_dump_that_fails_fails_the_load_with_its_message(tmp_path):
    fail = "sys.stdout.flush(); sys.exit('mariadb-dump: Got error: 1044: Access denied')"

    with pytest.raises(DatabaseError, match="mariadb-dump failed: mariadb-dump: Got error: 1044: Access denied"):
        load(dump_command(DUMP, tmp_path, fail), {}, [sys.executable, "-c", "import sys; sys.stdin.read()"], {})
