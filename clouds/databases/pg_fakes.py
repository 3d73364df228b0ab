"""The fakes of PostgreSQL anonymisation, as SQL functions that live in one session's pg_temp schema.

Every fake is derived from the production value by HMAC-SHA256 under the
environment's key, computed by the server (personal data never leaves it to be
masked). The key's inner and outer pads are handed to the session as settings
with bind parameters (never in a statement's text, so a server logging DDL never
logs them) and vanish with the session, as do these functions: nothing of the key
stays in the clone. `n` is an attempt number mixed into the HMAC: the
collision-free mapping of unique columns asks again with n + 1 for a value whose
fake is taken. A fake never equals its production value (`pick` asks again).
"""
from __future__ import annotations

from clouds.databases.fakes import TEXT_METHODS, method_of, pads, reference_mac, refuse_text_into

__all__ = ["FUNCTIONS", "expression", "pads", "reference_mac"]

FUNCTIONS = r"""
CREATE FUNCTION pg_temp.doppel_mac(m text) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT sha256(decode(current_setting('doppel.opad'), 'hex')
                || sha256(decode(current_setting('doppel.ipad'), 'hex') || convert_to(m, 'UTF8')))
$$;
CREATE FUNCTION pg_temp.doppel_word(h bytea, o int, n int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg((ARRAY['b','d','f','g','k','l','m','n','p','r','s','t','v','z','th','br'])
                        [get_byte(h, (o + 2 * i) % 32) % 16 + 1]
                    || (ARRAY['a','e','i','o','u','ai','ea','io'])[get_byte(h, (o + 2 * i + 1) % 32) % 8 + 1], ''
                    ORDER BY i)
         || (ARRAY['','','n','r','l','s','x','nd'])[get_byte(h, (o + 2 * n) % 32) % 8 + 1]
    FROM generate_series(0, n - 1) AS i
$$;
CREATE FUNCTION pg_temp.doppel_digit_stream(h bytea, i int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (get_byte(CASE WHEN i < 32 THEN h ELSE sha256(h || int4send(i / 32)) END, i % 32) % 10)::text
$$;
CREATE FUNCTION pg_temp.doppel_redigit(v text, h bytea, keep text) RETURNS text LANGUAGE sql IMMUTABLE
  PARALLEL SAFE AS $$
  SELECT string_agg(CASE WHEN c ~ '[0-9]' THEN pg_temp.doppel_digit_stream(h, i::int) ELSE c END, '' ORDER BY i)
    FROM regexp_split_to_table(v, '') WITH ORDINALITY AS t(c, i)
   WHERE c ~ '[0-9]' OR keep IS NULL OR strpos(keep, c) > 0
$$;
CREATE FUNCTION pg_temp.doppel_luhn(digits text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ((10 - sum(CASE WHEN i % 2 = 1 THEN (d * 2) / 10 + (d * 2) % 10 ELSE d END) % 10) % 10)::text
    FROM (SELECT substr(reverse(digits), i, 1)::int AS d, i FROM generate_series(1, length(digits)) AS i) AS x
$$;
CREATE FUNCTION pg_temp.doppel_iban_check(country text, bban text) RETURNS text LANGUAGE sql IMMUTABLE
  PARALLEL SAFE AS $$
  SELECT lpad((98 - (string_agg(CASE WHEN c ~ '[0-9]' THEN c ELSE (ascii(upper(c)) - 55)::text END, ''
                                ORDER BY i)::numeric % 97))::text, 2, '0')
    FROM regexp_split_to_table(bban || country || '00', '') WITH ORDINALITY AS t(c, i) WHERE c ~ '[0-9A-Za-z]'
$$;
CREATE FUNCTION pg_temp.doppel_digits(v text, n int, chk text) RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  h bytea := pg_temp.doppel_mac('digits|' || n || '|' || v);
  plain text; body text; compact text;
BEGIN
  IF chk = 'iban' AND v ~* '^\s*[a-z]{2}[0-9]{2}' THEN
    compact := regexp_replace(v, '\s', '', 'g');
    body := pg_temp.doppel_redigit(substr(compact, 5), h, NULL);
    RETURN regexp_replace(upper(substr(compact, 1, 2)) || pg_temp.doppel_iban_check(upper(substr(compact, 1, 2)),
                          upper(body)) || body, '(.{4})(?!$)', '\1 ', 'g');
  END IF;
  plain := pg_temp.doppel_redigit(v, h, NULL);
  IF chk = 'luhn' AND plain ~ '[0-9]' THEN
    body := regexp_replace(plain, '[^0-9]', '', 'g');
    body := left(body, length(body) - 1);
    RETURN regexp_replace(plain, '[0-9]([^0-9]*)$', pg_temp.doppel_luhn(body) || '\1');
  END IF;
  RETURN plain;
END $$;
CREATE FUNCTION pg_temp.doppel_fake(method text, v text, n int, opt text) RETURNS text LANGUAGE sql STABLE
  PARALLEL SAFE AS $$
  SELECT CASE method
    WHEN 'email' THEN pg_temp.doppel_word(h, 0, 2) || '.' || pg_temp.doppel_word(h, 6, 3) || '.'
                      || encode(substr(h, 17, 5), 'hex') || '@example.com'
    WHEN 'first_name' THEN initcap(pg_temp.doppel_word(h, 0, 2))
    WHEN 'last_name' THEN initcap(pg_temp.doppel_word(h, 0, 3))
    WHEN 'full_name' THEN initcap(pg_temp.doppel_word(h, 0, 2)) || ' ' || initcap(pg_temp.doppel_word(h, 6, 3))
    WHEN 'phone' THEN CASE WHEN length(regexp_replace(v, '[^0-9]', '', 'g')) < 4
                           THEN '+44 7700 9' || substr(pg_temp.doppel_redigit('00000', h, NULL), 1, 5)
                           ELSE pg_temp.doppel_redigit(v, h, ' +-().\/') END
    WHEN 'address' THEN (10 + get_byte(h, 20) * 4 + get_byte(h, 21) % 4)::text || ' '
                        || initcap(pg_temp.doppel_word(h, 0, 3)) || ' '
                        || (ARRAY['Street','Road','Lane','Avenue','Close','Way','Row','Place'])[get_byte(h, 22) % 8 + 1]
    WHEN 'text' THEN (SELECT string_agg(pg_temp.doppel_word(sha256(h || int4send(i / 5)), (i % 5) * 6, 2), ' '
                                        ORDER BY i)
                        FROM generate_series(0, greatest(1, least(200, length(v) / 6)) - 1) AS i)
    WHEN 'hash' THEN encode(h, 'hex')
    WHEN 'digits' THEN pg_temp.doppel_digits(v, n, opt)
  END
  FROM (SELECT pg_temp.doppel_mac(method || '|' || n || '|' || v) AS h) AS keyed
$$;
CREATE FUNCTION pg_temp.doppel_int(v text, n int) RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT ('x' || encode(substr(pg_temp.doppel_mac('hash|' || n || '|' || v), 1, 8), 'hex'))::bit(64)::bigint
         & 9223372036854775807
$$;
CREATE FUNCTION pg_temp.doppel_shift(v text, n int, days int) RETURNS int LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN get_byte(h, 0) % 2 = 0 THEN 1 ELSE -1 END * (1 + (get_byte(h, 1) * 256 + get_byte(h, 2)) % days)
    FROM (SELECT pg_temp.doppel_mac('date_shift|' || n || '|' || v) AS h) AS keyed
$$;
"""

INTEGER_TYPES = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}
DATE_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")


def expression(method: str, value: str, column_type: str, attempt: str, rule: dict) -> str:
    """The SQL of one fake of `value` (an SQL expression of the column's type) as the column's type.

    `attempt` is an SQL expression of the attempt number. Raises ValueError for a method that does not fit the type.
    """
    text = f"({value})::text"
    method = method_of({**rule, "method": method})
    if method == "date_shift":
        if column_type not in DATE_TYPES:
            raise ValueError(f"date_shift needs a date or timestamp column, not {column_type}")
        return (f"(({value}) + make_interval(days => pg_temp.doppel_shift({text}, {attempt}, "
                f"{int(rule['days'])})))::{column_type}")
    if method == "hash" and column_type in INTEGER_TYPES:
        return f"(pg_temp.doppel_int({text}, {attempt}) % {INTEGER_TYPES[column_type]})::{column_type}"
    if method in TEXT_METHODS:
        option = "NULL" if method != "digits" else f"'{rule.get('check', 'none')}'"
        if column_type in INTEGER_TYPES or column_type in DATE_TYPES or column_type == "numeric":
            refuse_text_into(method, column_type)
        return f"(pg_temp.doppel_fake('{method}', {text}, {attempt}, {option}))::{column_type}"
    raise ValueError(f"{method} is not a value method")
