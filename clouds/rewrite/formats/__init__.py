"""Config file formats, one module each: `rewrite(text, key, value)` edits one key in place, `read(text, key)`."""
