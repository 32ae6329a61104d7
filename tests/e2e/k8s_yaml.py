"""A small reader for the YAML subset deploy/k8s is written in (standard library only):
block mappings and sequences, flow mappings and sequences on one line, plain and quoted
scalars, comments and `---` between documents. No anchors, tags or multi-line scalars: the
manifests do not use them, and the reader refuses what it does not know rather than guess."""
import re


class YamlError(ValueError):
    pass


def _strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text):
    t = text.strip()
    if t in ("", "~", "null"):
        return None
    if t in ("true", "false"):
        return t == "true"
    if re.fullmatch(r"-?[0-9]+", t):
        return int(t)
    if t[0] in "\"'":
        if len(t) < 2 or t[-1] != t[0]:
            raise YamlError(f"unterminated string: {t}")
        return t[1:-1]
    if t[0] in "&*!|>":
        raise YamlError(f"unsupported YAML: {t}")
    return t


def _flow(s, pos, stop):
    """Parse one flow value from s[pos:]; returns (value, next position)."""
    while pos < len(s) and s[pos] == " ":
        pos += 1
    if pos < len(s) and s[pos] in "[{":
        closing = "]" if s[pos] == "[" else "}"
        is_map = s[pos] == "{"
        out = {} if is_map else []
        pos += 1
        while True:
            while pos < len(s) and s[pos] in " ,":
                pos += 1
            if pos >= len(s):
                raise YamlError(f"unterminated flow collection: {s}")
            if s[pos] == closing:
                return out, pos + 1
            if is_map:
                colon = s.index(":", pos)
                key = _scalar(s[pos:colon])
                value, pos = _flow(s, colon + 1, ",}")
                out[key] = value
            else:
                value, pos = _flow(s, pos, ",]")
                out.append(value)
    if pos < len(s) and s[pos] in "\"'":
        end = s.index(s[pos], pos + 1)
        return s[pos + 1:end], end + 1
    end = pos
    while end < len(s) and s[end] not in stop:
        end += 1
    return _scalar(s[pos:end]), end


def _value(text):
    text = text.strip()
    if text[:1] in "[{":
        value, end = _flow(text, 0, "")
        if text[end:].strip():
            raise YamlError(f"text after a flow collection: {text}")
        return value
    return _scalar(text)


def _split_key(content):
    m = re.match(r"^([^\"'{\[][^:]*?|\"[^\"]*\"|'[^']*'):(?: (.*)|)$", content)
    if not m:
        return None
    return _scalar(m.group(1)), (m.group(2) or "").strip()


def _block(lines, i, indent):
    """Parse the block starting at lines[i] (whose indentation is indent)."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        out = []
        while i < len(lines) and lines[i][0] == indent and (
                lines[i][1].startswith("- ") or lines[i][1] == "-"):
            item = lines[i][1][2:].strip()
            if not item:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            elif item[:1] not in "[{\"'" and _split_key(item):
                # "- key: value" opens a mapping whose keys sit two columns in.
                lines[i] = (indent + 2, item)
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _value(item), i + 1
            out.append(value)
        return out, i
    out = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        kv = _split_key(lines[i][1])
        if not kv:
            raise YamlError(f"not a mapping entry: {lines[i][1]}")
        key, rest = kv
        i += 1
        if rest:
            out[key] = _value(rest)
        elif i < len(lines) and (lines[i][0] > indent or (
                lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise YamlError(f"unexpected indentation: {lines[i][1]}")
    return out, i


def load_all(text):
    """The documents of a multi-document YAML text, as dicts and lists."""
    docs, current = [], []
    for raw in text.split("\n") + ["---"]:
        if raw.rstrip() == "---":
            if current:
                value, end = _block(current, 0, current[0][0])
                if end != len(current):
                    raise YamlError(f"unparsed text: {current[end][1]}")
                docs.append(value)
            current = []
            continue
        line = _strip_comment(raw).rstrip()
        if line.strip():
            if "\t" in line[:len(line) - len(line.lstrip())]:
                raise YamlError("tab indentation")
            current.append((len(line) - len(line.lstrip()), line.strip()))
    return docs
