#!/usr/bin/env python3
"""List the imports of a WebAssembly module and fail if any comes from "env".

Usage: wasm_imports.py FILE.wasm [--require-export NAME]...

A hand-written reader of the wasm binary format (no third-party packages):
magic + version header, then sections (id byte, LEB128 size, payload).
Section 2 holds the imports, section 7 the exports.

An import from module "env" in a wasm32-unknown-unknown build means some code
referenced a symbol nobody defined (typically C code or a missing `extern`),
which a browser cannot satisfy.

Exit status: 0 = no "env" imports (and every --require-export found),
1 = at least one "env" import (or a required export missing),
2 = usage error or malformed file.
"""

import sys

MAGIC = b"\x00asm"
SECTION_IMPORT = 2
SECTION_EXPORT = 7
KINDS = {0x00: "func", 0x01: "table", 0x02: "memory", 0x03: "global", 0x04: "tag"}


class WasmError(Exception):
    pass


class Reader:
    def __init__(self, data, pos=0, end=None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def at_end(self):
        return self.pos >= self.end

    def byte(self):
        if self.pos >= self.end:
            raise WasmError("unexpected end of data at offset %d" % self.pos)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n):
        if n < 0 or self.pos + n > self.end:
            raise WasmError("truncated: need %d bytes at offset %d" % (n, self.pos))
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uleb(self, max_bits=64):
        result = 0
        shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift >= max_bits + 7:
                raise WasmError("LEB128 too long at offset %d" % self.pos)

    def sleb(self, max_bits=64):
        result = 0
        shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result
            if shift >= max_bits + 7:
                raise WasmError("LEB128 too long at offset %d" % self.pos)

    def name(self):
        return self.bytes(self.uleb(32)).decode("utf-8", errors="replace")

    # --- types that can appear in an import descriptor ---

    def reftype(self):
        b = self.byte()
        if b in (0x63, 0x64):  # (ref null ht) / (ref ht), GC proposal
            self.sleb(33)  # heap type
        # 0x70 funcref, 0x6F externref and other abstract heap-type shorthands
        # are a single byte.

    def valtype(self):
        b = self.byte()
        if b in (0x63, 0x64):
            self.sleb(33)

    def limits(self):
        flags = self.byte()
        self.uleb()  # min (u32, or u64 with memory64)
        if flags & 0x01:
            self.uleb()  # max
        if flags & 0x08:
            self.uleb(32)  # custom page size (log2)


def parse(data):
    """Return (imports, exports): lists of (module, name, kind) / (name, kind)."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WasmError("not a wasm module (bad magic)")
    version = int.from_bytes(data[4:8], "little")
    if version != 1:
        raise WasmError("unsupported wasm binary version %d" % version)

    r = Reader(data, 8)
    imports, exports = [], []
    while not r.at_end():
        section_id = r.byte()
        size = r.uleb(32)
        start = r.pos
        if start + size > len(data):
            raise WasmError("section %d runs past end of file" % section_id)
        s = Reader(data, start, start + size)
        if section_id == SECTION_IMPORT:
            for _ in range(s.uleb(32)):
                module = s.name()
                field = s.name()
                kind = s.byte()
                if kind == 0x00:
                    s.uleb(32)  # type index
                elif kind == 0x01:
                    s.reftype()
                    s.limits()
                elif kind == 0x02:
                    s.limits()
                elif kind == 0x03:
                    s.valtype()
                    s.byte()  # mutability
                elif kind == 0x04:
                    s.byte()  # tag attribute
                    s.uleb(32)  # type index
                else:
                    raise WasmError("unknown import kind 0x%02x for %s.%s" % (kind, module, field))
                imports.append((module, field, KINDS[kind]))
            if s.pos != s.end:
                raise WasmError("import section size mismatch")
        elif section_id == SECTION_EXPORT:
            for _ in range(s.uleb(32)):
                field = s.name()
                kind = s.byte()
                s.uleb(32)  # index
                exports.append((field, KINDS.get(kind, "0x%02x" % kind)))
            if s.pos != s.end:
                raise WasmError("export section size mismatch")
        r.pos = start + size
    return imports, exports


def main(argv):
    args = argv[1:]
    required = []
    files = []
    i = 0
    while i < len(args):
        if args[i] == "--require-export" and i + 1 < len(args):
            required.append(args[i + 1])
            i += 2
        elif args[i] in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            files.append(args[i])
            i += 1
    if len(files) != 1:
        print("usage: wasm_imports.py FILE.wasm [--require-export NAME]...", file=sys.stderr)
        return 2

    path = files[0]
    try:
        with open(path, "rb") as f:
            data = f.read()
        imports, exports = parse(data)
    except (OSError, WasmError) as e:
        print("wasm_imports.py: %s: %s" % (path, e), file=sys.stderr)
        return 2

    print("%s: %d bytes, %d import(s), %d export(s)" % (path, len(data), len(imports), len(exports)))
    for module, field, kind in imports:
        print("  import %-6s %s.%s" % (kind, module, field))

    status = 0
    env = [(m, n) for m, n, _ in imports if m == "env"]
    if env:
        print(
            "FAIL: %d import(s) from module \"env\" (unresolved symbols): %s"
            % (len(env), ", ".join(n for _, n in env)),
            file=sys.stderr,
        )
        status = 1
    names = {n for n, _ in exports}
    for want in required:
        if want not in names:
            print("FAIL: required export %r not found" % want, file=sys.stderr)
            status = 1
    if status == 0:
        print("OK: no imports from \"env\"")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
