"""The fakes of MariaDB anonymisation: the same fakes as pg_fakes.py, byte for byte, in MariaDB's SQL.

Every fake is derived from the production value's HMAC-SHA256 under the
environment's key, computed by the server (personal data never leaves it), once
per distinct value: `mac` gives the HMAC of `method|value` and `fake` builds the
fake from that value and those 32 bytes alone, as pg_fakes.py does in
PostgreSQL (fakes.py), so one customer is one fake in every database of an
environment. Another attempt uses `next_mac`: the SHA-256 of the MAC and the
attempt number as 4 big-endian bytes (PostgreSQL's int4send).

MariaDB has no session-only functions: these are made in the clone database for
the masking and dropped after it (a clone that fails is dropped whole). They hold
nothing of the key: its pads reach the session as user variables set with bind
parameters (never in a statement's text) and vanish with it.
"""
from __future__ import annotations

from clouds.databases import fakes
from clouds.databases.fakes import TEXT_METHODS, canonical, pads, refuse_text_into

__all__ = ["FUNCTIONS", "NAMES", "check_fits", "fake", "is_dense", "mac", "next_mac", "pads"]


def _chunk(k: int) -> str:
    """18 decimal digits from bytes 8k..8k+7 of h, as pg_fakes._chunk makes them."""
    return (f"LPAD((CAST(CONV(HEX(SUBSTRING(h, {8 * k + 1}, 8)), 16, 10) AS UNSIGNED) & 9223372036854775807) "
            f"% 1000000000000000000, 18, '0')")


FUNCTIONS = [r"""
CREATE FUNCTION doppel_mac(m LONGTEXT CHARSET utf8mb4) RETURNS BINARY(32) DETERMINISTIC NO SQL
  RETURN UNHEX(SHA2(CONCAT(UNHEX(@doppel_opad),
                           UNHEX(SHA2(CONCAT(UNHEX(@doppel_ipad), CAST(m AS BINARY)), 256))), 256))""", r"""
CREATE FUNCTION doppel_next(h BINARY(32), n INT) RETURNS BINARY(32) DETERMINISTIC NO SQL
  RETURN UNHEX(SHA2(CONCAT(h, UNHEX(LPAD(HEX(n), 8, '0'))), 256))""", r"""
CREATE FUNCTION doppel_cap(w VARCHAR(255) CHARSET utf8mb4) RETURNS VARCHAR(255) CHARSET utf8mb4 DETERMINISTIC NO SQL
  RETURN CONCAT(UPPER(LEFT(w, 1)), SUBSTRING(w, 2))""", r"""
CREATE FUNCTION doppel_word(h BINARY(32), o INT, n INT) RETURNS VARCHAR(255) CHARSET utf8mb4 DETERMINISTIC NO SQL
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE w VARCHAR(255) CHARSET utf8mb4 DEFAULT '';
  WHILE i < n DO
    SET w = CONCAT(w, ELT(ASCII(SUBSTRING(h, (o + 2 * i) % 32 + 1, 1)) % 16 + 1,
                          'b','d','f','g','k','l','m','n','p','r','s','t','v','z','th','br'),
                      ELT(ASCII(SUBSTRING(h, (o + 2 * i + 1) % 32 + 1, 1)) % 8 + 1,
                          'a','e','i','o','u','ai','ea','io'));
    SET i = i + 1;
  END WHILE;
  RETURN CONCAT(w, ELT(ASCII(SUBSTRING(h, (o + 2 * n) % 32 + 1, 1)) % 8 + 1, '','','n','r','l','s','x','nd'));
END""", r"""
CREATE FUNCTION doppel_stream(h BINARY(32), n INT) RETURNS LONGTEXT CHARSET utf8mb4 DETERMINISTIC NO SQL
  RETURN LEFT(CASE WHEN n <= 18 THEN """ + _chunk(0) + r"""
                   WHEN n <= 36 THEN CONCAT(""" + _chunk(0) + ", " + _chunk(1) + r""")
                   ELSE REPEAT(CONCAT(""" + ", ".join(_chunk(k) for k in range(4)) + r"""), 1 + n DIV 72) END, n)""",
             r"""
CREATE FUNCTION doppel_redigit(v LONGTEXT CHARSET utf8mb4, h BINARY(32)) RETURNS LONGTEXT CHARSET utf8mb4
  DETERMINISTIC NO SQL
BEGIN
  -- the k-th digit of v becomes the k-th digit of the stream (PostgreSQL: format() with one %s per digit, and per
  -- chr(1), which its translate() marks digits with)
  DECLARE s LONGTEXT CHARSET utf8mb4 DEFAULT doppel_stream(h, CHAR_LENGTH(v));
  DECLARE i INT DEFAULT 1;
  DECLARE k INT DEFAULT 1;
  DECLARE a INT;
  DECLARE r LONGTEXT CHARSET utf8mb4 DEFAULT '';
  WHILE i <= CHAR_LENGTH(v) DO
    SET a = ASCII(SUBSTRING(v, i, 1));
    IF a BETWEEN 48 AND 57 OR a = 1 THEN
      SET r = CONCAT(r, SUBSTRING(s, k, 1));
      SET k = k + 1;
    ELSE
      SET r = CONCAT(r, SUBSTRING(v, i, 1));
    END IF;
    SET i = i + 1;
  END WHILE;
  RETURN r;
END""", r"""
CREATE FUNCTION doppel_luhn(digits LONGTEXT) RETURNS CHAR(1) DETERMINISTIC NO SQL
BEGIN
  DECLARE i INT DEFAULT 1;
  DECLARE d INT;
  DECLARE total INT DEFAULT 0;
  DECLARE rev LONGTEXT DEFAULT REVERSE(digits);
  WHILE i <= CHAR_LENGTH(rev) DO
    SET d = ASCII(SUBSTRING(rev, i, 1)) - 48;
    SET total = total + IF(i % 2 = 1, (d * 2) DIV 10 + (d * 2) % 10, d);
    SET i = i + 1;
  END WHILE;
  RETURN (10 - total % 10) % 10;
END""", r"""
CREATE FUNCTION doppel_with_luhn(plain LONGTEXT CHARSET utf8mb4) RETURNS LONGTEXT CHARSET utf8mb4
  DETERMINISTIC NO SQL
BEGIN
  IF plain NOT REGEXP '[0-9]' THEN
    RETURN plain;
  END IF;
  RETURN REGEXP_REPLACE(plain, '[0-9]([^0-9]*)$',
                        CONCAT(doppel_luhn(LEFT(REGEXP_REPLACE(plain, '[^0-9]', ''),
                                                CHAR_LENGTH(REGEXP_REPLACE(plain, '[^0-9]', '')) - 1)), '\\1'));
END""", r"""
CREATE FUNCTION doppel_iban_check(country VARCHAR(2), bban LONGTEXT) RETURNS CHAR(2) DETERMINISTIC NO SQL
BEGIN
  DECLARE s LONGTEXT DEFAULT CONCAT(bban, country, '00');
  DECLARE i INT DEFAULT 1;
  DECLARE j INT;
  DECLARE c INT;
  DECLARE t VARCHAR(2);
  DECLARE m INT DEFAULT 0;
  WHILE i <= CHAR_LENGTH(s) DO
    SET c = ASCII(UPPER(SUBSTRING(s, i, 1)));
    SET t = IF(c BETWEEN 48 AND 57, CHAR(c), IF(c BETWEEN 65 AND 90, c - 55, ''));
    SET j = 1;
    WHILE j <= CHAR_LENGTH(t) DO
      SET m = (m * 10 + ASCII(SUBSTRING(t, j, 1)) - 48) % 97;
      SET j = j + 1;
    END WHILE;
    SET i = i + 1;
  END WHILE;
  RETURN LPAD(98 - m, 2, '0');
END""", r"""
CREATE FUNCTION doppel_iban(v LONGTEXT CHARSET utf8mb4, h BINARY(32)) RETURNS LONGTEXT CHARSET utf8mb4
  DETERMINISTIC NO SQL
BEGIN
  DECLARE compact LONGTEXT CHARSET utf8mb4 DEFAULT REGEXP_REPLACE(v, '\\s', '');
  DECLARE body LONGTEXT CHARSET utf8mb4 DEFAULT doppel_redigit(SUBSTRING(compact, 5), h);
  RETURN REGEXP_REPLACE(CONCAT(UPPER(LEFT(compact, 2)), doppel_iban_check(UPPER(LEFT(compact, 2)), UPPER(body)),
                               body), '(.{4})(?!$)', '\\1 ');
END""", r"""
CREATE FUNCTION doppel_text(h BINARY(32), len INT) RETURNS LONGTEXT CHARSET utf8mb4 DETERMINISTIC NO SQL
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE k INT DEFAULT GREATEST(1, LEAST(200, len DIV 6));
  DECLARE words LONGTEXT CHARSET utf8mb4 DEFAULT '';
  WHILE i < k DO
    SET words = CONCAT(words, IF(i = 0, '', ' '), doppel_word(doppel_next(h, i DIV 5), (i % 5) * 6, 2));
    SET i = i + 1;
  END WHILE;
  RETURN words;
END"""]
NAMES = ("doppel_mac", "doppel_next", "doppel_cap", "doppel_word", "doppel_stream", "doppel_redigit", "doppel_luhn",
         "doppel_with_luhn", "doppel_iban_check", "doppel_iban", "doppel_text")

INTEGER_TYPES = {"tinyint": 127, "smallint": 32767, "mediumint": 8388607, "int": 2147483647,
                 "bigint": 9223372036854775807}
DATE_TYPES = ("date", "datetime", "timestamp")
NUMBER_TYPES = ("decimal", "float", "double", "year", "bit")
_STREETS = "'Street','Road','Lane','Avenue','Close','Way','Row','Place'"


def text(value: str) -> str:
    """A value as PostgreSQL's ::text spells it (what its MAC is of), in MariaDB."""
    return f"CAST(({value}) AS CHAR CHARACTER SET utf8mb4)"


def mac(method: str, value: str) -> str:
    """The SQL of the HMAC of one value (an SQL expression) for `method`: the 32 bytes its fakes are made of."""
    return f"doppel_mac(CONCAT('{canonical(method)}|', {text(value)}))"


def next_mac(mac_sql: str, attempt: int) -> str:
    """The bytes of another attempt, derived from the value's MAC (the key is not needed again)."""
    return f"doppel_next({mac_sql}, {int(attempt)})"


def is_dense(method: str, column_type: str) -> bool:
    return fakes.is_dense(method, column_type in INTEGER_TYPES)


def check_fits(method: str, column_type: str) -> None:
    """ValueError when `method` cannot make values of `column_type` (information_schema's DATA_TYPE)."""
    method = canonical(method)
    if method == "date_shift" and column_type not in DATE_TYPES:
        raise ValueError(f"date_shift needs a date or datetime column, not {column_type}")
    if method not in TEXT_METHODS and method != "date_shift":
        raise ValueError(f"{method} is not a value method")
    if method not in ("hash", "date_shift") and (
            column_type in INTEGER_TYPES or column_type in DATE_TYPES or column_type in NUMBER_TYPES):
        refuse_text_into(method, column_type)
    if method == "hash" and (column_type in DATE_TYPES or column_type in NUMBER_TYPES):
        raise ValueError(f"hash makes text; the column is {column_type} (use date_shift, fixed, null or sql)")


def _byte(h: str, i: int) -> str:
    return f"ASCII(SUBSTRING({h}, {i + 1}, 1))"  # PostgreSQL's get_byte(h, i)


def fake(method: str, value: str, h: str, column_type: str, rule: dict) -> str:
    """The SQL of the fake of `value` (an SQL expression of the column's type) made from `h` (an SQL expression of
    its MAC bytes); MariaDB converts it to the column's type on assignment. ValueError for a method that does not
    fit the type."""
    method = canonical(method)
    check_fits(method, column_type)
    as_text = text(value)
    if method == "date_shift":
        return (f"(({value}) + INTERVAL (IF({_byte(h, 0)} % 2 = 0, 1, -1) "
                f"* (1 + ({_byte(h, 1)} * 256 + {_byte(h, 2)}) % {int(rule['days'])})) DAY)")
    if method == "hash" and column_type in INTEGER_TYPES:
        return (f"((CAST(CONV(HEX(SUBSTRING({h}, 1, 8)), 16, 10) AS UNSIGNED) & 9223372036854775807) "
                f"% {INTEGER_TYPES[column_type]})")
    word = lambda offset, syllables: f"doppel_word({h}, {offset}, {syllables})"  # noqa: E731
    if method == "email":
        return f"CONCAT({word(0, 2)}, '.', {word(6, 3)}, '.', LOWER(HEX(SUBSTRING({h}, 17, 5))), '@example.com')"
    if method == "first_name":
        return f"doppel_cap({word(0, 2)})"
    if method == "last_name":
        return f"doppel_cap({word(0, 3)})"
    if method == "full_name":
        return f"CONCAT(doppel_cap({word(0, 2)}), ' ', doppel_cap({word(6, 3)}))"
    if method == "address":
        return (f"CONCAT(10 + {_byte(h, 20)} * 4 + {_byte(h, 21)} % 4, ' ', doppel_cap({word(0, 3)}), ' ', "
                f"ELT({_byte(h, 22)} % 8 + 1, {_STREETS}))")
    if method == "phone":
        return (f"IF(CHAR_LENGTH({as_text}) - CHAR_LENGTH(REGEXP_REPLACE({as_text}, '[0-9]', '')) < 4, "
                f"CONCAT('+44 7700 9', doppel_stream({h}, 5)), "
                fr"doppel_redigit(REGEXP_REPLACE({as_text}, '[^0-9 +().\\\\/-]', ''), {h}))")
    if method == "text":
        return f"doppel_text({h}, CHAR_LENGTH({as_text}))"
    if method == "hash":
        return f"LOWER(HEX({h}))"
    made = f"doppel_redigit({as_text}, {h})"  # digits, keeping the format and, when asked, a valid check digit
    check = rule.get("check", "none")
    if check == "luhn":
        return f"doppel_with_luhn({made})"
    if check == "iban":
        return fr"IF({as_text} REGEXP '^\\s*[a-zA-Z]{{2}}[0-9]{{2}}', doppel_iban({as_text}, {h}), {made})"
    return made
