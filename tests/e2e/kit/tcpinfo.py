"""A few counters of Linux's struct tcp_info, read with getsockopt.

Why: how many segments a socket sent or received shows whether small
writes left one by one or were held back and merged (Nagle waiting for a
delayed ACK).  Offsets are those of struct tcp_info in
/usr/include/linux/tcp.h (8 one-byte fields, then u32s from tcpi_rto at 8;
tcpi_data_segs_in/out since Linux 4.6).
"""

from __future__ import annotations

import dataclasses
import socket
import struct

_LEN = 232
_SEGS_OUT = 136       # __u32 tcpi_segs_out (data + pure ACKs)
_SEGS_IN = 140        # __u32 tcpi_segs_in
_DATA_SEGS_IN = 152   # __u32 tcpi_data_segs_in
_DATA_SEGS_OUT = 156  # __u32 tcpi_data_segs_out


@dataclasses.dataclass
class TcpInfo:
    segs_out: int
    segs_in: int
    data_segs_in: int
    data_segs_out: int


def tcp_info(s: socket.socket) -> TcpInfo:
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _LEN)
    if len(raw) < _DATA_SEGS_OUT + 4:
        raise RuntimeError(f"struct tcp_info is only {len(raw)} bytes")

    def u32(off: int) -> int:
        return struct.unpack_from("=I", raw, off)[0]

    return TcpInfo(u32(_SEGS_OUT), u32(_SEGS_IN), u32(_DATA_SEGS_IN),
                   u32(_DATA_SEGS_OUT))
