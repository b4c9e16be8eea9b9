# tests/fuzz/make_corpus.py: writes the seed inputs of tests/fuzz/corpus/ for
# fuzz_chan.c (input format: see the comment at its top). python3 make_corpus.py
# Files named regress_* are kept by hand, not written here: inputs that once
# exposed a library bug (they stay as seeds).
import os
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
# indexes into fuzz_chan.c's k_kind table (keep in step with it)
(SEND, RECV, TRY_SEND, TRY_RECV, CLOSE, SELECT, SELECT_BIG, LEN, YIELD, MISUSE, SEND_CTX,
 RECV_CTX, SELECT_CTX, CANCEL) = 0, 5, 10, 12, 14, 15, 20, 21, 23, 24, 26, 28, 30, 31
POLL, PAST, US1, US20, US200, MS1, FOREVER = range(7)
def hdr(ntasks, plain=0, pinned=0, grace=2, chans=()):
    b = [(ntasks - 1) | plain << 2 | pinned << 3 | grace << 4, len(chans) - 1]
    for cap_idx, esz_idx in chans:
        b.append(cap_idx | esz_idx << 3)
    return b
def op(kind, task, chan=0, dk=FOREVER, extra=0, cases=()):
    return [kind | task << 5, chan | dk << 2 | extra << 5] + list(cases)
def case(chan, send=False, nil=False, nullbuf=False):
    return chan | (4 if send else 0) | (0x18 if nil else 0) | (0x20 if nullbuf else 0)
CAP = {0: 0, 1: 2, 2: 4, 3: 5, 4: 6, 16: 7}
ESZ = {0: 0, 4: 1, 8: 2, 24: 3}
seeds = {}
# 1. ping-pong over two unbuffered u32 channels
b = hdr(2, chans=[(CAP[0], ESZ[4]), (CAP[0], ESZ[4])])
for _ in range(20):
    b += op(SEND, 0, 0) + op(RECV, 1, 0) + op(SEND, 1, 1) + op(RECV, 0, 1)
seeds['pingpong'] = b
# 2. buffered producer/consumer of 24-byte elements, then close; consumer drains
b = hdr(2, chans=[(CAP[4], ESZ[24])])
for _ in range(12):
    b += op(SEND, 0, 0) + op(RECV, 1, 0)
b += op(CLOSE, 0, 0, extra=7) + op(RECV, 1, 0) + op(RECV, 1, 0) + op(SEND, 0, 0)
seeds['prodcons_close'] = b
# 3. three tasks, selects over channels of capacity 0, 1, 16
b = hdr(3, chans=[(CAP[0], ESZ[8]), (CAP[1], ESZ[4]), (CAP[16], ESZ[0])])
for i in range(10):
    b += op(SELECT, i % 3, dk=US200, extra=3, cases=[case(0, True), case(1), case(2, True), case(0)])
    b += op(SEND, (i + 1) % 3, i % 3, dk=MS1) + op(RECV, (i + 2) % 3, (i + 1) % 3, dk=US20)
seeds['select3'] = b
# 4. single task: the sequential model, buffered, try forms, biased select, len
b = hdr(1, chans=[(CAP[2], ESZ[4]), (CAP[0], ESZ[0])])
for i in range(8):
    b += op(TRY_SEND, 0, 0) + op(LEN, 0, 0) + op(TRY_RECV, 0, i % 2)
    b += op(SELECT, 0, dk=POLL, extra=4 | 2, cases=[case(0), case(0, True), case(1, nil=True)])
b += op(CLOSE, 0, 0, extra=6) + op(TRY_RECV, 0, 0) + op(MISUSE, 0, 0, extra=2)
seeds['model_buffered'] = b
# 5. signal channels, task 0 on the plain thread, pinned tasks
b = hdr(3, plain=1, pinned=1, grace=1, chans=[(CAP[1], ESZ[0]), (CAP[0], ESZ[0])])
for i in range(10):
    b += op(SEND, 0, i % 2, extra=i & 1) + op(RECV, 1 + i % 2, i % 2) + op(YIELD, 2, extra=1)
seeds['signal_plain'] = b
# 6. a big select (17+ cases: the heap path) against senders
b = hdr(2, chans=[(CAP[0], ESZ[4]), (CAP[3], ESZ[8])])
for i in range(6):
    b += op(SELECT_BIG, 0, dk=MS1, extra=2, cases=[case(j % 2, send=(j % 3 == 0)) for j in range(18)])
    b += op(SEND, 1, 0, dk=US200) + op(RECV, 1, 1, dk=US20)
seeds['select_big'] = b
# 7. contexts: tasks blocked in send_ctx/recv_ctx/select_ctx, then a root cancel
b = hdr(3, grace=3, chans=[(CAP[0], ESZ[4]), (CAP[2], ESZ[8])])
for i in range(6):
    b += op(SEND_CTX, 0, i % 2) + op(RECV_CTX, 1, i % 2)
    b += op(SELECT_CTX, 2, extra=2, cases=[case(0), case(1, True)])
b += op(CANCEL, 2, dk=PAST, extra=7) + op(RECV_CTX, 0, 0) + op(SELECT_CTX, 1, extra=0)
seeds['ctx_cancel'] = b
# 8. single task with contexts: the model of "tried first", then cancel own ctx
b = hdr(1, chans=[(CAP[2], ESZ[4])])
b += op(SEND_CTX, 0, 0) + op(SEND_CTX, 0, 0) + op(RECV_CTX, 0, 0) + op(CANCEL, 0, dk=POLL, extra=6)
b += op(SEND_CTX, 0, 0) + op(SEND_CTX, 0, 0) + op(SELECT_CTX, 0, extra=1, cases=[case(0)])
b += op(RECV_CTX, 0, 0) + op(RECV_CTX, 0, 0) + op(RECV_CTX, 0, 0)
seeds['model_ctx'] = b
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(bytes(data))
print(len(seeds), 'seeds')
