"""Bench scenarios, one module each; add new ones to REGISTRY (issue 5:
throughput, ping-pong latency, wrk)."""

from . import http_splitwrite, imap_append, pingpong, wwr

REGISTRY = {s.name: s
            for s in (imap_append.SCENARIO, http_splitwrite.SCENARIO,
                      wwr.SCENARIO, wwr.WriteWriteReadBoth, pingpong.SCENARIO)}
