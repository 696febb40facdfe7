"""The names and numbers a .proto file gives its messages' fields, enums' values and oneofs:
what protobuf's JSON mapping and the wire depend on. A small reader of the proto3 text etcd and
ChainFire write (no imports resolved, options ignored)."""
import re


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


FIELD = re.compile(r"^\s*(?:repeated\s+|optional\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(?:\[[^\]]*\])?\s*;")
ENUM_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(-?\d+)\s*(?:\[[^\]]*\])?\s*;")
MAP_FIELD = re.compile(r"^\s*map\s*<[^>]+>\s+(\w+)\s*=\s*(\d+)")


def read(text):
    """{"Message.field": number, "Message.Enum.VALUE": number, "Message.oneof:name": 0, ...}
    with nested names joined by dots."""
    names = {}
    stack = []  # (kind, name)
    text = strip_comments(text).replace("{", "{\n").replace("}", "\n}\n").replace(";", ";\n")
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"^(message|enum|oneof|service)\s+(\w+)\s*\{$", line)
        if m:
            stack.append((m.group(1), m.group(2)))
            if m.group(1) == "oneof":
                names[".".join(n for k, n in stack[:-1]) + ".oneof:" + m.group(2)] = 0
            continue
        if line == "}" or line == "};":
            if stack:
                stack.pop()
            continue
        if not stack or stack[-1][0] == "service":
            continue
        # A oneof's fields belong to the message around it.
        scope = ".".join(n for k, n in stack if k != "oneof")
        if stack[-1][0] == "enum":
            m = ENUM_VALUE.match(line)
            if m and not line.startswith("option"):
                names[scope + "." + m.group(1)] = int(m.group(2))
            continue
        m = MAP_FIELD.match(line) or None
        if m:
            names[scope + "." + m.group(1)] = int(m.group(2))
            continue
        m = FIELD.match(line)
        if m and m.group(1) not in ("option", "reserved"):
            names[scope + "." + m.group(2)] = int(m.group(3))
    return names
