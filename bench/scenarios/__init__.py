"""Bench scenarios, one module each (a module may define variants, e.g.
wwr, wwr-both and wwr-nodelay); add new ones to REGISTRY."""

from . import (bulk, cpu, http_splitwrite, http_wrk, idle_memory, imap_append,
               interval, pingpong, trickle, wwr)

REGISTRY = {s.name: s
            for s in (imap_append.SCENARIO, http_splitwrite.SCENARIO,
                      wwr.SCENARIO, wwr.WriteWriteReadBoth,
                      wwr.WriteWriteReadNoDelay, pingpong.SCENARIO,
                      bulk.SCENARIO, http_wrk.HttpKeepAlive,
                      http_wrk.HttpClose, idle_memory.SCENARIO,
                      interval.SCENARIO, trickle.SCENARIO, cpu.SCENARIO)}
