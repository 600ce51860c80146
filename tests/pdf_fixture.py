"""A minimal, valid one-page PDF with real text, written by hand so tests need no PDF library to make one."""

from __future__ import annotations


def make_pdf(text: str) -> bytes:
    return make_pdf_raw([f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()])


def make_pdf_raw(pages: list[bytes], filters: bytes = b"") -> bytes:
    """A PDF whose pages have the given (already encoded) content streams, e.g. FlateDecode-compressed ones."""
    n = len(pages)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + b" ".join(f"{3 + 2 * i} 0 R".encode() for i in range(n))
               + b"] /Count " + str(n).encode() + b" >>"]
    for i, content in enumerate(pages):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                       + f"{4 + 2 * i} 0 R".encode() + b" /Resources << /Font << /F1 " + f"{3 + 2 * n}".encode()
                       + b" 0 R >> >> >>")
        objects.append(b"<< /Length " + str(len(content)).encode() + filters + b" >>\nstream\n" + content
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_pdf_bomb(expanded_mb: int) -> bytes:
    """One page whose Flate content stream inflates to ``expanded_mb`` MB of text operators (~1000:1)."""
    import zlib

    z = zlib.compressobj(9)
    head = z.compress(b"BT /F1 12 Tf 72 720 Td (")
    body = b"".join(z.compress(b"A" * 1_000_000) for _ in range(expanded_mb))
    return make_pdf_raw([head + body + z.compress(b") Tj ET") + z.flush()], b" /Filter /FlateDecode")
