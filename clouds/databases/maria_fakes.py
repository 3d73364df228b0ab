"""The fakes of MariaDB anonymisation: the same fakes as pg_fakes.py, as stored functions in MariaDB's SQL.

Every fake is derived from the production value by HMAC-SHA256 under the
environment's key, computed by the server (personal data never leaves it), byte
for byte as PostgreSQL computes it (fakes.py), so one customer is one fake in
every database of an environment. MariaDB has no session-only functions: these
are made in the clone database for the masking and dropped after it (a clone that
fails is dropped whole). They hold nothing of the key: its pads reach the session
as user variables set with bind parameters (never in a statement's text) and
vanish with it. `n` is the attempt number of the collision-free mapping.
"""
from __future__ import annotations

from clouds.databases.fakes import TEXT_METHODS, method_of, pads, refuse_text_into

__all__ = ["FUNCTIONS", "NAMES", "expression", "pads"]

_BYTE = "ASCII(SUBSTRING({h}, {i} + 1, 1))"  # get_byte(h, i)
FUNCTIONS = [r"""
CREATE FUNCTION doppel_mac(m LONGTEXT CHARSET utf8mb4) RETURNS BINARY(32) DETERMINISTIC NO SQL
  RETURN UNHEX(SHA2(CONCAT(UNHEX(@doppel_opad),
                           UNHEX(SHA2(CONCAT(UNHEX(@doppel_ipad), CAST(m AS BINARY)), 256))), 256))""", r"""
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
CREATE FUNCTION doppel_redigit(v LONGTEXT CHARSET utf8mb4, h BINARY(32), keep VARCHAR(32) CHARSET utf8mb4)
  RETURNS LONGTEXT CHARSET utf8mb4 DETERMINISTIC NO SQL
BEGIN
  DECLARE i INT DEFAULT 1;
  DECLARE c VARCHAR(1) CHARSET utf8mb4;
  DECLARE r LONGTEXT CHARSET utf8mb4 DEFAULT '';
  WHILE i <= CHAR_LENGTH(v) DO
    SET c = SUBSTRING(v, i, 1);
    IF ASCII(c) BETWEEN 48 AND 57 THEN
      SET r = CONCAT(r, ASCII(SUBSTRING(IF(i < 32, h, UNHEX(SHA2(CONCAT(h, UNHEX(LPAD(HEX(i DIV 32), 8, '0'))), 256))),
                                        i % 32 + 1, 1)) % 10);
    ELSEIF keep IS NULL OR LOCATE(BINARY c, BINARY keep) > 0 THEN
      SET r = CONCAT(r, c);
    END IF;
    SET i = i + 1;
  END WHILE;
  RETURN r;
END""", r"""
CREATE FUNCTION doppel_luhn(digits VARCHAR(255)) RETURNS CHAR(1) DETERMINISTIC NO SQL
BEGIN
  DECLARE i INT DEFAULT 1;
  DECLARE d INT;
  DECLARE total INT DEFAULT 0;
  DECLARE rev VARCHAR(255) DEFAULT REVERSE(digits);
  WHILE i <= CHAR_LENGTH(rev) DO
    SET d = ASCII(SUBSTRING(rev, i, 1)) - 48;
    SET total = total + IF(i % 2 = 1, (d * 2) DIV 10 + (d * 2) % 10, d);
    SET i = i + 1;
  END WHILE;
  RETURN (10 - total % 10) % 10;
END""", r"""
CREATE FUNCTION doppel_iban_check(country VARCHAR(2), bban VARCHAR(255)) RETURNS CHAR(2) DETERMINISTIC NO SQL
BEGIN
  DECLARE s VARCHAR(255) DEFAULT CONCAT(bban, country, '00');
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
CREATE FUNCTION doppel_digits(v LONGTEXT CHARSET utf8mb4, n INT, chk VARCHAR(8)) RETURNS LONGTEXT CHARSET utf8mb4
  DETERMINISTIC NO SQL
BEGIN
  DECLARE h BINARY(32) DEFAULT doppel_mac(CONCAT('digits|', n, '|', v));
  DECLARE plain, body, compact LONGTEXT CHARSET utf8mb4;
  IF chk = 'iban' AND v REGEXP '^\\s*[a-zA-Z]{2}[0-9]{2}' THEN
    SET compact = REGEXP_REPLACE(v, '\\s', '');
    SET body = doppel_redigit(SUBSTRING(compact, 5), h, NULL);
    RETURN REGEXP_REPLACE(CONCAT(UPPER(LEFT(compact, 2)), doppel_iban_check(UPPER(LEFT(compact, 2)), UPPER(body)),
                                 body), '(.{4})(?!$)', '\\1 ');
  END IF;
  SET plain = doppel_redigit(v, h, NULL);
  IF chk = 'luhn' AND plain REGEXP '[0-9]' THEN
    SET body = REGEXP_REPLACE(plain, '[^0-9]', '');
    SET body = LEFT(body, CHAR_LENGTH(body) - 1);
    RETURN REGEXP_REPLACE(plain, '[0-9]([^0-9]*)$', CONCAT(doppel_luhn(body), '\\1'));
  END IF;
  RETURN plain;
END""", r"""
CREATE FUNCTION doppel_fake(method VARCHAR(16), v LONGTEXT CHARSET utf8mb4, n INT, opt VARCHAR(8))
  RETURNS LONGTEXT CHARSET utf8mb4 DETERMINISTIC NO SQL
BEGIN
  DECLARE h BINARY(32) DEFAULT doppel_mac(CONCAT(method, '|', n, '|', v));
  DECLARE i INT DEFAULT 0;
  DECLARE k INT;
  DECLARE words LONGTEXT CHARSET utf8mb4 DEFAULT '';
  CASE method
  WHEN 'email' THEN
    RETURN CONCAT(doppel_word(h, 0, 2), '.', doppel_word(h, 6, 3), '.', LOWER(HEX(SUBSTRING(h, 17, 5))),
                  '@example.com');
  WHEN 'first_name' THEN RETURN doppel_cap(doppel_word(h, 0, 2));
  WHEN 'last_name' THEN RETURN doppel_cap(doppel_word(h, 0, 3));
  WHEN 'full_name' THEN RETURN CONCAT(doppel_cap(doppel_word(h, 0, 2)), ' ', doppel_cap(doppel_word(h, 6, 3)));
  WHEN 'phone' THEN
    IF CHAR_LENGTH(REGEXP_REPLACE(v, '[^0-9]', '')) < 4 THEN
      RETURN CONCAT('+44 7700 9', LEFT(doppel_redigit('00000', h, NULL), 5));
    END IF;
    RETURN doppel_redigit(v, h, ' +-().\\/');
  WHEN 'address' THEN
    RETURN CONCAT(10 + ASCII(SUBSTRING(h, 21, 1)) * 4 + ASCII(SUBSTRING(h, 22, 1)) % 4, ' ',
                  doppel_cap(doppel_word(h, 0, 3)), ' ',
                  ELT(ASCII(SUBSTRING(h, 23, 1)) % 8 + 1, 'Street','Road','Lane','Avenue','Close','Way','Row','Place'));
  WHEN 'text' THEN
    SET k = GREATEST(1, LEAST(200, CHAR_LENGTH(v) DIV 6));
    WHILE i < k DO
      SET words = CONCAT(words, IF(i = 0, '', ' '), doppel_word(UNHEX(SHA2(CONCAT(h, UNHEX(LPAD(HEX(i DIV 5), 8, '0'))),
                                                                          256)), (i % 5) * 6, 2));
      SET i = i + 1;
    END WHILE;
    RETURN words;
  WHEN 'hash' THEN RETURN LOWER(HEX(h));
  WHEN 'digits' THEN RETURN doppel_digits(v, n, opt);
  ELSE RETURN NULL;
  END CASE;
END""", r"""
CREATE FUNCTION doppel_int(v LONGTEXT CHARSET utf8mb4, n INT) RETURNS BIGINT UNSIGNED DETERMINISTIC NO SQL
  RETURN CAST(CONV(HEX(SUBSTRING(doppel_mac(CONCAT('hash|', n, '|', v)), 1, 8)), 16, 10) AS UNSIGNED)
         & 9223372036854775807""", r"""
CREATE FUNCTION doppel_shift(v LONGTEXT CHARSET utf8mb4, n INT, days INT) RETURNS INT DETERMINISTIC NO SQL
BEGIN
  DECLARE h BINARY(32) DEFAULT doppel_mac(CONCAT('date_shift|', n, '|', v));
  RETURN IF(ASCII(SUBSTRING(h, 1, 1)) % 2 = 0, 1, -1)
         * (1 + (ASCII(SUBSTRING(h, 2, 1)) * 256 + ASCII(SUBSTRING(h, 3, 1))) % days);
END"""]
NAMES = ("doppel_mac", "doppel_cap", "doppel_word", "doppel_redigit", "doppel_luhn", "doppel_iban_check",
         "doppel_digits", "doppel_fake", "doppel_int", "doppel_shift")

INTEGER_TYPES = {"tinyint": 127, "smallint": 32767, "mediumint": 8388607, "int": 2147483647,
                 "bigint": 9223372036854775807}
DATE_TYPES = ("date", "datetime", "timestamp")
NUMBER_TYPES = ("decimal", "float", "double", "year", "bit")


def expression(method: str, value: str, column_type: str, attempt: str, rule: dict) -> str:
    """The SQL of one fake of `value` (an SQL expression of the column's type); MariaDB converts it to the column's
    type on assignment. `column_type` is information_schema's DATA_TYPE. ValueError for a method that does not fit."""
    text = f"CAST(({value}) AS CHAR CHARACTER SET utf8mb4)"
    method = method_of({**rule, "method": method})
    if method == "date_shift":
        if column_type not in DATE_TYPES:
            raise ValueError(f"date_shift needs a date or datetime column, not {column_type}")
        return f"(({value}) + INTERVAL doppel_shift({text}, {attempt}, {int(rule['days'])}) DAY)"
    if method == "hash" and column_type in INTEGER_TYPES:
        return f"(doppel_int({text}, {attempt}) % {INTEGER_TYPES[column_type]})"
    if method in TEXT_METHODS:
        option = "NULL" if method != "digits" else f"'{rule.get('check', 'none')}'"
        if column_type in INTEGER_TYPES or column_type in DATE_TYPES or column_type in NUMBER_TYPES:
            refuse_text_into(method, column_type)
        return f"doppel_fake('{method}', {text}, {attempt}, {option})"
    raise ValueError(f"{method} is not a value method")
