"""Bench scenarios, one module each; add new ones to REGISTRY (issue 5:
throughput, ping-pong latency, wrk)."""

from . import http_splitwrite, imap_append, wwr

REGISTRY = {m.SCENARIO.name: m.SCENARIO
            for m in (imap_append, http_splitwrite, wwr)}
