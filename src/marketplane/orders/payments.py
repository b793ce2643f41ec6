"""The payment port, and the built-in `test` provider.

A provider authorizes, captures and refunds, and may answer later by calling back (a signed
request to `/hooks/payments/{provider}`). Providers resend callbacks, so each is handled once
by its event id, and again only as a no-op.

The test provider is told what to do by the payment token the client sends, as card test
numbers do elsewhere: `tok_test_ok` (the default) succeeds; `tok_test_declined` is declined at
authorization; `tok_test_capture_fails` authorizes but fails to capture; `tok_test_pending`
answers "pending" and settles only by callback; `tok_test_refund_fails` succeeds but refuses
every refund. Its answers depend on nothing but their arguments, so any process may ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import orjson

from marketplane.kernel import signing
from marketplane.kernel.errors import BadRequest, Unauthorized


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    reference: str | None = None
    failure_code: str | None = None
    fee: int = 0  # of a capture: what the provider keeps of it


@dataclass(frozen=True, slots=True)
class Callback:
    """A provider's later answer about a payment."""

    event_id: str
    payment_id: str
    outcome: Outcome
    reference: str | None
    failure_code: str | None
    fee: int = 0


class PaymentProvider(Protocol):
    name: str

    async def authorize(
        self, *, payment_id: str, amount: int, currency: str, token: str
    ) -> Answer: ...

    async def capture(self, *, reference: str, amount: int, currency: str) -> Answer: ...

    async def refund(
        self, *, refund_id: str, reference: str, amount: int, currency: str
    ) -> Answer: ...

    def callback(self, *, headers: dict[str, str], body: bytes) -> Callback:
        """Verifies and reads a callback; raises Unauthorized when it is not the provider's."""
        ...


TOKENS = ("tok_test_ok", "tok_test_declined", "tok_test_capture_fails", "tok_test_pending",
          "tok_test_refund_fails")  # fmt: skip
SIGNATURE_HEADER = "test-signature"
FEE_BPS, FEE_FIXED = 140, 25  # what the test provider keeps of a capture: 1.4% + 0.25


def fee_for(amount: int) -> int:
    return min(amount, (amount * FEE_BPS + 5000) // 10_000 + FEE_FIXED)


class TestProvider:
    """Deterministic and in-process: for development, tests and the demo."""

    __test__ = False  # a payment provider named "test", not a test case
    name = "test"
    TOKENS = TOKENS

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    async def authorize(self, *, payment_id: str, amount: int, currency: str, token: str) -> Answer:
        if token not in TOKENS:
            raise BadRequest(
                f"the test provider knows the tokens {', '.join(TOKENS)}",
                code="unknown_payment_token",
            )
        mode = token.removeprefix("tok_test_")
        reference = f"tp_{payment_id}_{mode}"
        if mode == "declined":
            return Answer(Outcome.FAILED, reference, "card_declined")
        if mode == "pending":
            return Answer(Outcome.PENDING, reference)
        return Answer(Outcome.SUCCEEDED, reference)

    async def capture(self, *, reference: str, amount: int, currency: str) -> Answer:
        if reference.endswith("_capture_fails"):
            return Answer(Outcome.FAILED, reference, "capture_failed")
        return Answer(Outcome.SUCCEEDED, reference, fee=fee_for(amount))

    async def refund(self, *, refund_id: str, reference: str, amount: int, currency: str) -> Answer:
        if reference.endswith("_refund_fails"):
            return Answer(Outcome.FAILED, None, "refund_refused")
        return Answer(Outcome.SUCCEEDED, f"tr_{refund_id}")

    def sign(self, body: bytes) -> str:
        return signing.sign(self._secret, body)

    def make_callback(
        self,
        *,
        event_id: str,
        payment_id: str,
        outcome: Outcome,
        failure_code: str | None = None,
        fee: int = 0,
    ) -> tuple[dict[str, str], bytes]:
        """What the provider would send: headers and body (tests and the demo send it)."""
        body = orjson.dumps(
            {
                "id": event_id,
                "payment": payment_id,
                "outcome": str(outcome),
                "reference": f"tp_{payment_id}_pending",
                "failure_code": failure_code,
                "fee": fee,
            }
        )
        return {SIGNATURE_HEADER: self.sign(body), "content-type": "application/json"}, body

    def callback(self, *, headers: dict[str, str], body: bytes) -> Callback:
        if not signing.verify(self._secret, body, headers.get(SIGNATURE_HEADER, "")):
            raise Unauthorized("the callback's signature does not match", code="bad_signature")
        try:
            data = orjson.loads(body)
            return Callback(
                event_id=str(data["id"]),
                payment_id=str(data["payment"]),
                outcome=Outcome(data["outcome"]),
                reference=data.get("reference"),
                failure_code=data.get("failure_code"),
                fee=int(data.get("fee") or 0),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"not a callback: {exc}", code="invalid_callback") from exc
