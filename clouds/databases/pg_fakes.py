"""The fakes of PostgreSQL anonymisation: SQL expressions over a value and its MAC, with helper functions that live
in one session's pg_temp schema.

Every fake is derived from the production value's HMAC-SHA256 under the
environment's key, computed by the server (personal data never leaves it to be
masked), once per distinct value: `mac` gives the HMAC of `method|value`, and
`fake` builds the fake from that value and those 32 bytes alone. The key's inner
and outer pads are handed to the session as settings with bind parameters (never
in a statement's text, so a server logging DDL never logs them) and vanish with
the session, as do these functions: nothing of the key stays in the clone.
Another attempt (the collision-free map of unique columns asks again for a value
whose fake is taken, and a fake equal to its own production value is asked for
again) uses `next_mac`: the SHA-256 of the MAC and the attempt number.

Speed: a fake is a few C-level builtins (get_byte into constant arrays, translate,
format) in SQL functions that PostgreSQL inlines into the statement; no aggregate
over generate_series and no regular expression per character.
"""
from __future__ import annotations

from clouds.databases import fakes
from clouds.databases.fakes import TEXT_METHODS, canonical, pads, reference_mac, refuse_text_into

__all__ = ["FUNCTIONS", "check_fits", "fake", "is_dense", "mac", "next_mac", "pads", "reference_mac"]

_LUHN_TERMS = " + ".join(f"(ARRAY[0,2,4,6,8,1,3,5,7,9])[get_byte(r, {i}) - 47]" if i % 2 == 0 else
                         f"(get_byte(r, {i}) - 48)" for i in range(32))


def _chunk(k: int) -> str:
    """18 decimal digits from bytes 8k..8k+7 of h (a string of digits is what translate() made, 20x slower)."""
    return (f"lpad(((('x' || encode(substr(h, {8 * k + 1}, 8), 'hex'))::bit(64)::bigint & 9223372036854775807) "
            f"% 1000000000000000000)::text, 18, '0')")
FUNCTIONS = r"""
CREATE FUNCTION pg_temp.doppel_mac(m text) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT sha256(decode(current_setting('doppel.opad'), 'hex')
                || sha256(decode(current_setting('doppel.ipad'), 'hex') || convert_to(m, 'UTF8')))
$$;
CREATE FUNCTION pg_temp.doppel_word(h bytea, o int, n int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ('{b,d,f,g,k,l,m,n,p,r,s,t,v,z,th,br}'::text[])[get_byte(h, o % 32) % 16 + 1]
         || ('{a,e,i,o,u,ai,ea,io}'::text[])[get_byte(h, (o + 1) % 32) % 8 + 1]
         || ('{b,d,f,g,k,l,m,n,p,r,s,t,v,z,th,br}'::text[])[get_byte(h, (o + 2) % 32) % 16 + 1]
         || ('{a,e,i,o,u,ai,ea,io}'::text[])[get_byte(h, (o + 3) % 32) % 8 + 1]
         || CASE WHEN n > 2 THEN ('{b,d,f,g,k,l,m,n,p,r,s,t,v,z,th,br}'::text[])[get_byte(h, (o + 4) % 32) % 16 + 1]
                                 || ('{a,e,i,o,u,ai,ea,io}'::text[])[get_byte(h, (o + 5) % 32) % 8 + 1] ELSE '' END
         || ('{"","",n,r,l,s,x,nd}'::text[])[get_byte(h, (o + 2 * n) % 32) % 8 + 1]
$$;
CREATE FUNCTION pg_temp.doppel_stream(h bytea, n int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT substr(CASE WHEN n <= 18 THEN """ + _chunk(0) + r"""
                     WHEN n <= 36 THEN """ + _chunk(0) + " || " + _chunk(1) + r"""
                     ELSE repeat(""" + " || ".join(_chunk(k) for k in range(4)) + r""", 1 + n / 72) END, 1, n)
$$;
-- STABLE as format() is: an IMMUTABLE function calling it would not be inlined
CREATE FUNCTION pg_temp.doppel_redigit(v text, h bytea) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT format(replace(translate(replace(v, '%', '%%'), '0123456789', repeat(chr(1), 10)), chr(1), '%s'),
                VARIADIC string_to_array(pg_temp.doppel_stream(h, length(v)), NULL))
$$;
CREATE FUNCTION pg_temp.doppel_luhn(body text) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  r bytea := convert_to(rpad(reverse(body), 32, '0'), 'UTF8');
  total int := 0;
BEGIN
  IF length(body) > 32 THEN  -- longer than any card: digit by digit
    FOR i IN 1..length(body) LOOP
      total := total + CASE WHEN i % 2 = 1 THEN (ARRAY[0,2,4,6,8,1,3,5,7,9])[ascii(substr(reverse(body), i, 1)) - 47]
                            ELSE ascii(substr(reverse(body), i, 1)) - 48 END;
    END LOOP;
    RETURN ((10 - total % 10) % 10)::text;
  END IF;
  RETURN ((10 - (""" + _LUHN_TERMS + r""") % 10) % 10)::text;
END $$;
CREATE FUNCTION pg_temp.doppel_with_luhn(plain text) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF plain !~ '[0-9]' THEN
    RETURN plain;
  END IF;
  RETURN regexp_replace(plain, '[0-9]([^0-9]*)$',
                        pg_temp.doppel_luhn(left(regexp_replace(plain, '[^0-9]', '', 'g'), -1)) || '\1');
END $$;
CREATE FUNCTION pg_temp.doppel_iban_check(country text, bban text) RETURNS text LANGUAGE sql IMMUTABLE
  PARALLEL SAFE AS $$
  SELECT lpad((98 - (string_agg(CASE WHEN c ~ '[0-9]' THEN c ELSE (ascii(upper(c)) - 55)::text END, ''
                                ORDER BY i)::numeric % 97))::text, 2, '0')
    FROM regexp_split_to_table(bban || country || '00', '') WITH ORDINALITY AS t(c, i) WHERE c ~ '[0-9A-Za-z]'
$$;
CREATE FUNCTION pg_temp.doppel_iban(v text, h bytea) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  compact text := regexp_replace(v, '\s', '', 'g');
  body text := pg_temp.doppel_redigit(substr(compact, 5), h);
BEGIN
  RETURN regexp_replace(upper(substr(compact, 1, 2)) || pg_temp.doppel_iban_check(upper(substr(compact, 1, 2)),
                        upper(body)) || body, '(.{4})(?!$)', '\1 ', 'g');
END $$;
CREATE FUNCTION pg_temp.doppel_text(h bytea, len int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg(pg_temp.doppel_word(sha256(h || int4send(i / 5)), (i % 5) * 6, 2), ' ' ORDER BY i)
    FROM generate_series(0, greatest(1, least(200, len / 6)) - 1) AS i
$$;
"""

INTEGER_TYPES = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}
DATE_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")
_STREETS = "'{Street,Road,Lane,Avenue,Close,Way,Row,Place}'::text[]"


def mac(method: str, value: str) -> str:
    """The SQL of the HMAC of one value (an SQL expression) for `method`: the 32 bytes its fakes are made of."""
    return f"pg_temp.doppel_mac('{canonical(method)}|' || ({value})::text)"


def next_mac(mac_sql: str, attempt: int) -> str:
    """The bytes of another attempt, derived from the value's MAC (the key is not needed again)."""
    return f"sha256({mac_sql} || int4send({int(attempt)}))"


def is_dense(method: str, column_type: str) -> bool:
    return fakes.is_dense(method, column_type in INTEGER_TYPES)


def check_fits(method: str, column_type: str) -> None:
    """ValueError when `method` cannot make values of `column_type`."""
    method = canonical(method)
    if method == "date_shift" and column_type not in DATE_TYPES:
        raise ValueError(f"date_shift needs a date or timestamp column, not {column_type}")
    if method not in TEXT_METHODS and method != "date_shift":
        raise ValueError(f"{method} is not a value method")
    if method not in ("hash", "date_shift") and (
            column_type in INTEGER_TYPES or column_type in DATE_TYPES or column_type == "numeric"):
        refuse_text_into(method, column_type)
    if method == "hash" and column_type in DATE_TYPES + ("numeric",):
        raise ValueError(f"hash makes text; the column is {column_type} (use date_shift, fixed, null or sql)")


def fake(method: str, value: str, h: str, column_type: str, rule: dict) -> str:
    """The SQL of the fake of `value` (an SQL expression of the column's type) made from `h` (an SQL expression of
    its MAC bytes), as the column's type. Pass plain column references: the helpers are inlined and use each
    argument many times. Raises ValueError for a method that does not fit the type."""
    method = canonical(method)
    check_fits(method, column_type)
    text = f"({value})::text"
    if method == "date_shift":
        return (f"(({value}) + make_interval(days => CASE WHEN get_byte({h}, 0) % 2 = 0 THEN 1 ELSE -1 END "
                f"* (1 + (get_byte({h}, 1) * 256 + get_byte({h}, 2)) % {int(rule['days'])})))::{column_type}")
    if method == "hash" and column_type in INTEGER_TYPES:
        return (f"((('x' || encode(substr({h}, 1, 8), 'hex'))::bit(64)::bigint & 9223372036854775807) "
                f"% {INTEGER_TYPES[column_type]})::{column_type}")
    word = lambda offset, syllables: f"pg_temp.doppel_word({h}, {offset}, {syllables})"  # noqa: E731
    if method == "email":
        made = (f"{word(0, 2)} || '.' || {word(6, 3)} || '.' || encode(substr({h}, 17, 5), 'hex') "
                "|| '@example.com'")
    elif method == "first_name":
        made = f"initcap({word(0, 2)})"
    elif method == "last_name":
        made = f"initcap({word(0, 3)})"
    elif method == "full_name":
        made = f"initcap({word(0, 2)}) || ' ' || initcap({word(6, 3)})"
    elif method == "address":
        made = (f"(10 + get_byte({h}, 20) * 4 + get_byte({h}, 21) % 4)::text || ' ' || initcap({word(0, 3)}) "
                f"|| ' ' || ({_STREETS})[get_byte({h}, 22) % 8 + 1]")
    elif method == "phone":
        made = (f"CASE WHEN length({text}) - length(translate({text}, '0123456789', '')) < 4 "
                f"THEN '+44 7700 9' || pg_temp.doppel_stream({h}, 5) "
                fr"ELSE pg_temp.doppel_redigit(regexp_replace({text}, '[^0-9 +().\\/-]', '', 'g'), {h}) END")
    elif method == "text":
        made = f"pg_temp.doppel_text({h}, length({text}))"
    elif method == "hash":
        made = f"encode({h}, 'hex')"
    else:  # digits, keeping the format and, when asked, a valid check digit
        check = rule.get("check", "none")
        made = f"pg_temp.doppel_redigit({text}, {h})"
        if check == "luhn":
            made = f"pg_temp.doppel_with_luhn({made})"
        elif check == "iban":
            made = (fr"CASE WHEN {text} ~* '^\s*[a-z]{{2}}[0-9]{{2}}' THEN pg_temp.doppel_iban({text}, {h}) "
                    f"ELSE {made} END")
    return f"({made})::{column_type}"
