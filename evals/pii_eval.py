"""Precision and recall of the PII scrubber on a generated, labelled set (seeded, so the set is the same each run).

Each example is a sentence with one labelled entity: real PII (e-mails, phone numbers in several countries'
formats, cards with valid Luhn digits, valid IBANs, SSNs, public IPv4/IPv6 addresses) or a look-alike that is not
PII (cards failing Luhn, IBANs failing mod-97, invalid SSNs, version numbers, dates, order ids, loopback
addresses, ISBNs, times). A PII example counts as found when the entity is gone and a placeholder of the right
type took its place; a look-alike counts as a false positive when anything in it was replaced.

    python -m evals.pii_eval [--n 400] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections import defaultdict
from dataclasses import dataclass

from retrieval.pii import luhn_ok, scrub

TEMPLATES = ["Contact {} for details.", "The record lists {} as given.", "Please note: {}.", "Value ({}) was seen.",
             "Ticket 4711 mentions {} twice.", "{} appears in the log."]


@dataclass(frozen=True)
class Example:
    text: str
    entity: str
    kind: str | None  # the placeholder type expected, None for look-alikes


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn_complete(body: str) -> str:
    for d in string.digits:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def _grouped(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def _iban(rng: random.Random, country: str, length: int, valid: bool) -> str:
    bban = _digits(rng, length - 4)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check % 97) + 1 if check != 97 else 2
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def generate(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    names = ["ada", "j.smith", "maria-lopez", "k_tanaka", "ops+alerts", "li.wei"]
    domains = ["example.com", "mail.example.org", "corp.example.co.uk", "example.de"]
    makers = [
        ("email", lambda: f"{rng.choice(names)}{rng.randint(1, 99)}@{rng.choice(domains)}"),
        ("phone", lambda: f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}"),
        ("phone", lambda: f"{rng.randint(201, 989)}-{_digits(rng, 3)}-{_digits(rng, 4)}"),
        ("phone", lambda: f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}"),
        ("phone", lambda: f"+49 30 {_digits(rng, 8)}"),
        ("phone", lambda: f"+33 1 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"),
        ("phone", lambda: f"+91 {_digits(rng, 5)} {_digits(rng, 5)}"),
        ("phone", lambda: f"020 {_digits(rng, 4)} {_digits(rng, 4)}"),
        ("card", lambda: _grouped(_luhn_complete("4" + _digits(rng, 14)))),
        ("card", lambda: _luhn_complete("5" + str(rng.randint(1, 5)) + _digits(rng, 13))),
        ("iban", lambda: _iban(rng, "DE", 22, True)),
        ("iban", lambda: _iban(rng, "FR", 27, True)),
        ("iban", lambda: _iban(rng, "GB", 22, True)),
        ("ssn", lambda: f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"),
        ("ip", lambda: f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"),
        ("ip", lambda: f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}"),
    ]

    def bad_card() -> str:
        good = _luhn_complete("4" + _digits(rng, 14))
        return good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)

    lookalikes = [
        bad_card,
        lambda: _iban(rng, "DE", 22, False),
        lambda: f"000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        lambda: f"{rng.randint(900, 999)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        lambda: f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 50)}",
        lambda: f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        lambda: f"order #{_digits(rng, 8)}",
        lambda: "127.0.0.1",
        lambda: "::1",
        lambda: f"ISBN 978-{rng.randint(0, 9)}-{_digits(rng, 3)}-{_digits(rng, 5)}-{rng.randint(0, 9)}",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        lambda: f"{rng.randint(1, 999)}.{rng.randint(1, 99)} EUR",
        lambda: f"room {rng.randint(100, 999)}",
        lambda: f"user at {rng.choice(domains)}",
    ]
    examples = []
    for i in range(n):
        if i % 3 == 2:
            entity, kind = rng.choice(lookalikes)(), None
        else:
            kind, make = rng.choice(makers)
            entity = make()
        examples.append(Example(rng.choice(TEMPLATES).format(entity), entity, kind))
    return examples


def score(examples: list[Example]) -> dict:
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fn": 0, "fp": 0})
    fp_examples = []
    missed = []
    for ex in examples:
        out, _ = scrub(ex.text)
        if ex.kind is None:
            if out != ex.text:
                per["look-alike"]["fp"] += 1
                fp_examples.append(ex.text)
            continue
        if ex.entity not in out and f"[{ex.kind.upper()}]" in out:
            per[ex.kind]["tp"] += 1
        else:
            per[ex.kind]["fn"] += 1
            missed.append(ex.text)
    tp = sum(v["tp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    return {"examples": len(examples), "pii": tp + fn, "look_alikes": len(examples) - tp - fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "per_type": {k: dict(v) for k, v in sorted(per.items())},
            "false_positives": fp_examples[:10], "missed": missed[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = score(generate(args.n, args.seed))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['examples']} examples ({result['pii']} PII, {result['look_alikes']} look-alikes): "
          f"precision {result['precision']:.3f}, recall {result['recall']:.3f}")
    for kind, counts in result["per_type"].items():
        print(f"  {kind:12s} {counts}")
    for text in result["false_positives"]:
        print(f"  false positive: {text}")
    for text in result["missed"]:
        print(f"  missed: {text}")


if __name__ == "__main__":
    main()
