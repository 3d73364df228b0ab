"""File trees on an OpenStack production's servers: `files:` of an openstack production in doppel.yaml.

```yaml
productions:
  shop:
    driver: openstack
    ...
    files:                               # trees a backup copies with rsync over SSH
      - path: /var/www/html/wp-content/uploads   # on the server; name: from its last part (uploads)
        host: "{outputs.app_ip}"         # an output of the env's stack (of production's, for production)
        port: "{outputs.ssh_port}"       # or a number; 22 when absent
        user: doppel                     # a user whose authorized_keys holds Doppel's public key
        host_key: "ssh-ed25519 AAAAC3Nza..."   # the server's host key, pinned: any other is refused
        host_key_env: SHOP_APP_HOST_KEY  # optional: the private part, for the template's user data
        exclude: ["cache/*"]             # as a files component's
```

A file tree is a `files` component (schemas.production) reached over SSH instead of
in a directory: `path` and `exclude` mean what they mean there, `name` names it in
the archive (`files/<name>/`). `host_key` is the one public key the server may
present; with `host_key_env`, the template's parameters may hand the key pair to
the servers it makes (`{host_key.NAME}`, `{host_key.NAME.public}`), so a DR server
made again from the template presents the same key (docs/openstack.md).
"""
from __future__ import annotations

import base64
import binascii
import posixpath
import re
import struct

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from schemas.base import ENV_VAR, Identifier, Strict, needs
from schemas.templates import TemplateError, placeholders

HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
HOST_KEY_PLACEHOLDER = "host_key."  # {host_key.NAME} (private) and {host_key.NAME.public} in parameters
_OUTPUT_ONLY = re.compile(r"^\{\s*outputs\.[A-Za-z0-9_]+\s*\}$")


def parse_public_key(text: str) -> tuple[str, bytes]:
    """(type, blob) of an OpenSSH public key line such as `ssh-ed25519 AAAA... comment`; ValueError otherwise."""
    parts = str(text).split()
    if len(parts) < 2 or parts[0] not in HOST_KEY_TYPES:
        raise ValueError(f"must be a public host key line, `<type> <base64> [comment]` with a type of "
                         f"{', '.join(HOST_KEY_TYPES)} (the .pub file, or a line of `ssh-keyscan -t ed25519 HOST`)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode() if length <= len(blob) - 4 else ""
    except (binascii.Error, struct.error, UnicodeDecodeError):
        inner = ""
    if inner not in HOST_KEY_TYPES:
        raise ValueError(f"the key data after {parts[0]} is not an OpenSSH public key")
    if inner != parts[0]:
        raise ValueError(f"the key data is a {inner} key, not {parts[0]}")
    return parts[0], blob


def is_private_host_key(placeholder: str) -> bool:
    """Whether a parameter placeholder is a server's private host key ({host_key.TREE}, not its .public)."""
    placeholder = placeholder.strip()
    return placeholder.startswith(HOST_KEY_PLACEHOLDER) and not placeholder.endswith(".public")


def fingerprint(blob: bytes) -> str:
    """The SHA256 fingerprint `ssh-keygen -lf` and ssh itself print: SHA256:<base64 without padding>."""
    import hashlib
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class _OutputOrValue(fields.Field):
    """A literal, or exactly one `{outputs.NAME}`: where the stack says the server is."""

    def __init__(self, literal: fields.Field, **kwargs):
        super().__init__(**kwargs)
        self.literal = literal

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and "{" in value:
            try:
                roots = {root for root, _ in placeholders(value)}
            except TemplateError as exc:
                raise ValidationError(str(exc)) from None
            if roots != {"outputs"} or not _OUTPUT_ONLY.match(value.strip()):
                raise ValidationError("may be a value or one {outputs.NAME} (an output of the stack)")
            return value.strip()
        return self.literal.deserialize(value, attr, data)

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class OpenStackFileTree(Strict):
    """A directory on a server of the production's (and so of each environment's), copied with rsync over SSH."""
    name = Identifier()
    path = fields.String(required=True, error_messages=needs("path: /var/www/html/wp-content/uploads"))
    host = _OutputOrValue(fields.String(validate=validate.Length(min=1)), required=True,
                          error_messages=needs('host: "{outputs.app_ip}"'))
    port = _OutputOrValue(fields.Integer(validate=validate.Range(min=1, max=65535)), load_default=22)
    user = fields.String(required=True, validate=validate.Regexp(r"^[a-z_][a-z0-9_.-]{0,31}$", error=(
        "must be a login name on the server (e.g. doppel)")), error_messages=needs("user: doppel"))
    host_key = fields.String(required=True, error_messages=needs('host_key: "ssh-ed25519 AAAAC3Nza..."'))
    host_key_env = fields.String(validate=ENV_VAR)
    exclude = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    identity_file = fields.String()  # Doppel's own key (<state_dir>/openstack/ssh/id_ed25519) when absent

    @validates_schema(skip_on_field_errors=True)
    def _checked(self, data, **kwargs):
        errors: dict = {}
        path = data["path"]
        if not path.startswith("/") or posixpath.normpath(path) in ("/", "//"):
            errors["path"] = [f"{path!r} must be an absolute directory on the server other than / "
                              "(e.g. /var/www/html/wp-content/uploads)"]
        try:
            parse_public_key(data["host_key"])
        except ValueError as exc:
            errors["host_key"] = [str(exc)]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _named(self, data, **kwargs):
        data["path"] = posixpath.normpath(data["path"])
        if "name" not in data:
            stem = re.sub(r"[^a-z0-9_]", "_", posixpath.basename(data["path"]).lower()).strip("_") or "files"
            data["name"] = (stem if stem[0].isalpha() else f"files_{stem}")[:63]
        kind, blob = parse_public_key(data["host_key"])
        data["host_key"] = f"{kind} {base64.b64encode(blob).decode()}"  # the comment is not part of the key
        return data


def check_file_trees(trees: list, parameters: dict) -> dict:
    """Errors of the `files:` list as a whole: names once each; {host_key.NAME} only for trees with host_key_env."""
    errors: dict = {}
    seen: dict[str, int] = {}
    for index, tree in enumerate(trees):
        if tree["name"] in seen:
            errors.setdefault("files", {})[index] = {"name": [
                f"{tree['name']!r} is taken by files entry {seen[tree['name']]}; give each tree its own name"]}
        seen.setdefault(tree["name"], index)
    keyed = {tree["name"] for tree in trees if tree.get("host_key_env")}
    for parameter, value in parameters.items():
        for used in re.findall(r"\{([^{}]+)\}", value) if isinstance(value, str) else []:
            used = used.strip()
            if used.startswith(HOST_KEY_PLACEHOLDER):
                name = used[len(HOST_KEY_PLACEHOLDER):].removesuffix(".public")
                if name not in keyed:
                    errors.setdefault("parameters", {})[parameter] = [
                        f"uses {{{used}}}, but no files entry named {name!r} has host_key_env (the variable "
                        "holding the server's private host key); add it, or use one of: "
                        f"{', '.join(sorted(keyed)) or 'none'}"]
    return errors
