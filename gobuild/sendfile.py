"""waitress' output loop with file answers sent by os.sendfile (the kernel copies from the page cache).

waitress sends a wsgi.file_wrapper answer by reading a chunk into Python, offering it to the
socket and, for what the socket took, reading it again to skip it: two reads and a copy per
chunk, and a chunk of memory per busy connection. os.sendfile does none of that. Everything else
(headers, small bodies, a file without a descriptor) leaves as waitress sends it. flush_some is
waitress 3's HTTPChannel._flush_some with the send of one chunk swapped for _send.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer

MAX_SENDFILE = 1 << 30  # one call's count; the socket takes what fits in its buffer anyway
# The client is gone (waitress' wasyncore list): close the channel, as waitress' own send does.
DISCONNECTED = frozenset({errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE,
                          errno.EBADF})


def flush_some(channel: Any, do_close: bool = True) -> bool:
    """Send as much of channel's output buffers as the socket takes now; whether anything went."""
    sent = 0
    while True:
        outbuf = channel.outbufs[0]
        left = outbuf.__len__()  # not len(): no OverflowError on a huge file
        while left > 0:
            n = _send(channel, outbuf, left, do_close)
            if not n:
                break
            left -= n
            sent += n
            channel.total_outbufs_len -= n
        if left > 0 or len(channel.outbufs) == 1:  # the socket is full, or all is sent (the last stays writable)
            break
        done = channel.outbufs.pop(0)
        try:
            done.close()
        except Exception:
            channel.logger.exception("Unexpected error when closing an outbuf")
    if sent:
        channel.last_activity = time.time()
    return bool(sent)


def _send(channel: Any, outbuf: Any, left: int, do_close: bool) -> int:
    """One send of outbuf's next bytes; the number the socket took (0: full, or the client is gone)."""
    fileno = _fileno(outbuf)
    if fileno is None:
        n = int(channel.send(outbuf.get(channel.sendbuf_len), do_close=do_close))
        if n:
            outbuf.skip(n, True)
        return n
    offset = outbuf.file.tell()
    try:
        n = os.sendfile(channel.socket.fileno(), fileno, offset, min(left, MAX_SENDFILE))
    except BlockingIOError:
        return 0
    except OSError as e:
        if e.errno not in DISCONNECTED:
            raise
        if do_close:
            channel.handle_close()
        return 0
    outbuf.file.seek(offset + n)
    outbuf.remain -= n
    return n


def _fileno(outbuf: Any) -> int | None:
    """The descriptor of a file answer that sendfile can read, else None."""
    if not isinstance(outbuf, ReadOnlyFileBasedBuffer) or not hasattr(outbuf.file, "seek"):
        return None
    try:
        return int(outbuf.file.fileno())
    except (AttributeError, OSError, ValueError):  # io.BytesIO and friends have none
        return None
