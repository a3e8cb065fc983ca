"""Order arithmetic in exact decimals."""
from decimal import Decimal, ROUND_HALF_UP

CENT = Decimal("0.01")


def order_total(order):
    total = Decimal(0)
    for item in order.get("items", []):
        total += Decimal(str(item["price"])) * int(item.get("qty", 1))
    return total.quantize(CENT, rounding=ROUND_HALF_UP)
