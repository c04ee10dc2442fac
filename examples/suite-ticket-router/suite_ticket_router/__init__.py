"""A support-ticket router built as a suite plugin that lives outside the suite's package.

It fine-tunes its own backbone to route tickets to a queue, indexes routed tickets to
find similar past ones, adds ``suite tickets ...`` commands, ``POST /api/tickets/route``
and a scheduled job that routes new tickets from an inbox file.
"""

__version__ = "0.1.0"
