"""Summarises a batch of orders: totals per customer and the largest order.

Uses only the standard library, as a realistic JSON-in, JSON-out function.
Event: {"orders": [{"id": "o1", "customer": "ada", "items": [{"sku": "pen", "qty": 2, "price": "1.50"}]}]}
"""
from collections import defaultdict
from decimal import Decimal

import pricing


def handler(event, context):
    orders = event.get("orders")
    if not isinstance(orders, list):
        raise ValueError("event.orders must be a list of orders")
    totals = defaultdict(Decimal)
    largest = None
    for order in orders:
        amount = pricing.order_total(order)
        totals[order["customer"]] += amount
        if largest is None or amount > largest[1]:
            largest = (order["id"], amount)
    print(f"summarised {len(orders)} orders for {len(totals)} customers")
    return {
        "customers": {name: str(total) for name, total in sorted(totals.items())},
        "largest_order": largest and {"id": largest[0], "total": str(largest[1])},
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
