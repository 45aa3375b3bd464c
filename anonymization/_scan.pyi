from typing import Literal

def find(
    text: str,
) -> list[tuple[int, int, Literal["email", "phone", "card", "iban", "ip", "ssn"]]] | None: ...
