#!/usr/bin/env python3
# Writes the seed corpora in fuzz/corpus/<harness>/: a few valid inputs per
# harness in the input format that harness parses (see the comment at the
# top of each fuzz/*_fuzz.c), so that fuzzing starts from messages that get
# deep instead of from noise.  Run from the repository root; the output is
# committed, so this only needs running again when a format changes.
import os
import struct

U = "0badcafe-1234-4abc-8def-0123456789ab"


def write(harness, name, data):
    # vfu_serve reads vfu_msg's format: the two share their seeds.
    for h in (harness, "vfu_serve") if harness == "vfu_msg" else (harness,):
        d = os.path.join("fuzz", "corpus", h)
        os.makedirs(d, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


# ---- vfu_msg: mode byte, then per message: fd spec, fd shape, op, ... ----
VERSION, DMA_MAP, DMA_UNMAP, GET_INFO, REGION_INFO, IO_FDS = 1, 2, 3, 4, 5, 6
IRQ_INFO, SET_IRQS, REGION_READ, REGION_WRITE, RESET = 7, 8, 9, 10, 13
BAR0, BAR2, CONFIG, MSIX = 0, 2, 7, 2
MEMFD, EVENTFD = 1, 2


def built(cmd, payload, spec=0, shape=0):
    """A message whose header the harness builds around cmd and payload."""
    return bytes([spec, shape, 1, cmd]) + struct.pack("<H", len(payload)) + payload


def raw(data, spec=0, shape=0):
    return bytes([spec, shape, 0]) + struct.pack("<H", len(data)) + data


def region_write(region, off, data):
    return built(REGION_WRITE, struct.pack("<QII", off, region, len(data)) + data)


def region_read(region, off, count):
    return built(REGION_READ, struct.pack("<QII", off, region, count))


def reg(off, val):
    return region_write(BAR0, off, struct.pack("<I", val))


def vfu_seeds():
    write("vfu_msg", "info", b"\x01" + built(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
          + b"".join(built(REGION_INFO, struct.pack("<IIIIQQ", 32, 0, i, 0, 0, 0))
                     for i in (BAR0, BAR2, CONFIG))
          + built(IRQ_INFO, struct.pack("<IIII", 16, 0, MSIX, 0))
          + built(IO_FDS, struct.pack("<IIII", 16 + 8 * 40, 0, BAR0, 0)))
    dma = struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0x4000)
    write("vfu_msg", "dma", b"\x01" + built(DMA_MAP, dma, MEMFD, 0x80 | 4)
          + built(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0x100000, 0x4000))
          + built(DMA_MAP, struct.pack("<IIQQQ", 32, 1, 0, 0x200000, 0x1000))
          + built(DMA_MAP, dma, MEMFD, 4)
          + built(DMA_UNMAP, struct.pack("<IIQQ", 24, 2, 0, 0)))
    write("vfu_msg", "irqs", b"\x01"
          + built(SET_IRQS, struct.pack("<IIIII", 20, (1 << 2) | (1 << 5), MSIX, 0, 1), EVENTFD)
          + built(SET_IRQS, struct.pack("<IIIII", 20, 1 | (1 << 5), MSIX, 0, 1))
          + built(SET_IRQS, struct.pack("<IIIII", 21, 2 | (1 << 5), MSIX, 8, 1) + b"\x01")
          + built(SET_IRQS, struct.pack("<IIIII", 20, 1 | (1 << 5), MSIX, 0, 0)))
    write("vfu_msg", "regions", b"\x01" + region_read(CONFIG, 0, 4)
          + region_write(CONFIG, 0x10, b"\xff\xff\xff\xff") + region_read(CONFIG, 0x10, 4)
          + region_write(BAR2, 0x100, bytes(range(16))) + region_read(BAR2, 0x100, 16)
          + reg(0x50, 0x12345678) + region_read(BAR0, 0x50, 4) + built(RESET, b""))
    # A queue on DMA-mapped memory, enabled and rung through BAR0.
    q = 0x800
    write("vfu_msg", "queue", b"\x01"
          + built(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0xf000), MEMFD, 0x80 | 15)
          + reg(q + 0x00, 0x100000) + reg(q + 0x08, 2) + reg(q + 0x10, 0x100f00)
          + reg(0x20, 1) + reg(q + 0x1c, 1) + reg(0x1000, 1) + region_read(BAR0, q + 0x20, 4))
    # A second client knocks while the first is served; then the partition
    # is destroyed under a client holding DMA and an interrupt.
    write("vfu_msg", "second", b"\x03" + built(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0)))
    write("vfu_msg", "destroyed", b"\x05" + built(DMA_MAP, dma, MEMFD, 0x80 | 4)
          + built(SET_IRQS, struct.pack("<IIIII", 20, (1 << 2) | (1 << 5), MSIX, 0, 1), EVENTFD))
    # Engines run a ring in client memory, which is unmapped under them.
    fence = struct.pack("<HHIB7xQQ", 1, 1, 7, 1, 0x100800, 0xabc) + bytes(32)
    copy = struct.pack("<HHIBB6xQQQ", 2, 0, 8, 1, 0, 0x100000, 0, 0x1000) + bytes(24)
    ram = fence + copy + bytes(0xf00 - 128) + struct.pack("<I", 0)
    # A guest store of PI = 2 once the queue is enabled (CI := PI at
    # enable), and pauses: messages are not waited for, time is.
    publish = bytes([0, 0, 0x40]) + struct.pack("<HB", 0xf00, 4) + struct.pack("<I", 2)
    pause = bytes([0, 0, 0x40]) + struct.pack("<HB", 0, 0)
    run = (b"\x09" + struct.pack("<H", len(ram)) + ram
           + built(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0xf000), MEMFD, 0x80 | 15)
           + reg(q + 0x00, 0x100000) + reg(q + 0x08, 2) + reg(q + 0x10, 0x100f00)
           + reg(0x20, 1) + reg(q + 0x1c, 1) + pause + publish + reg(0x1000, 1))
    write("vfu_msg", "engine", run + pause * 3 + region_read(BAR2, 0, 0x1000)
          + region_read(BAR0, q + 0x18, 4))
    write("vfu_msg", "engine-unmap", run + built(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0x100000, 0xf000))
          + region_read(BAR0, q + 0x18, 4))
    # Guest RAM mapped without an fd: enabling the queue has the server
    # send DMA_READ (id 0) of the producer index and wait for the reply,
    # which comes right (PI 0), refused, or short; then a doorbell, whose
    # engine asks again (id 1), answered after a pause.
    fdless = (b"\x01" + built(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0x10000))
              + reg(q + 0x00, 0x100000) + reg(q + 0x08, 2) + reg(q + 0x10, 0x100f00)
              + reg(0x20, 1) + reg(q + 0x1c, 1))

    def dma_reply(msg_id, addr, data, flags=1, err=0, count=None):
        body = struct.pack("<QQ", addr, len(data) if count is None else count) + data
        return raw(struct.pack("<HHIII", msg_id, 11, 16 + len(body), flags, err) + body)

    pause1 = bytes([0, 0, 0x40]) + struct.pack("<HB", 0, 0)
    write("vfu_msg", "fdless", fdless + dma_reply(0, 0x100f00, struct.pack("<I", 0))
          + reg(0x1000, 1) + pause1 + dma_reply(1, 0x100f00, struct.pack("<I", 0))
          + region_read(BAR0, q + 0x18, 4))
    write("vfu_msg", "fdless-refused", fdless
          + raw(struct.pack("<HHIII", 0, 11, 16, 1 | (1 << 5), 14))
          + region_read(BAR0, q + 0x28, 4))
    write("vfu_msg", "fdless-short", fdless + dma_reply(0, 0x100f00, b"\0\0", count=4))
    hdr = struct.pack("<HHIII", 1, VERSION, 16 + 4, 0, 0)
    write("vfu_msg", "raw", b"\x00" + raw(hdr + struct.pack("<HH", 0, 1))
          + raw(struct.pack("<HHIII", 2, GET_INFO, 32, 0, 0) + bytes(16)))


# ---- ctl: newline-separated requests ----
def ctl_seeds():
    write("ctl", "gpus", '{"method":"gpus","version":1}\n{"method":"types","gpu":"gpu1"}\n')
    write("ctl", "create", '{"method":"create","version":1,"gpu":"gpu0","type":"sim-8m-2",'
          '"uuid":"%s"}\n{"method":"list"}\n{"method":"destroy","uuid":"%s"}\n' % (U, U))
    write("ctl", "sched", '{"method":"create","type":"sim-4m-4"}\n'
          '{"method":"sched","gpu":"gpu0","policy":"equal-share"}\n{"method":"stats"}\n')
    write("ctl", "busy", '{"method":"create","gpu":"1","type":"sim-2m-8","uuid":"%s"}\n!\n'
          '{"method":"destroy","uuid":"%s"}\n{"method":"list"}\n'
          '{"method":"destroy","uuid":"%s","force":true}\n' % (U, U, U))
    write("ctl", "bad", '{"method":"nope"}\n{"version":2,"method":"gpus"}\n[1,2]\n{"method":')


# ---- pool_state: name/held/GPU/layout byte, then the file ----
def state(parent, typ, off, size, uuid=U, version=1):
    return ('{"version":%d,"uuid":"%s","parent":"%s","type":"%s","vram_offset":%d,'
            '"vram_size":%d,"attrs":[]}' % (version, uuid, parent, typ, off, size))


def definition(typ, off, size, start="auto", more=""):
    return ('{"mdev_type":"%s","start":"%s","attrs":[{"vram_offset":"%d"},'
            '{"vram_size":"%d"},{"revision":"1"}%s]}' % (typ, start, off, size, more))


def pool_state_seeds():
    g = 1 << 30
    write("pool_state", "gpu0", b"\x00" + definition("sim-4g-2", 4 * g, 4 * g).encode())
    write("pool_state", "gpu1", b"\x14" + definition("sim-64m-16", 960 << 20, 64 << 20,
                                                       "manual").encode())
    write("pool_state", "held", b"\x04" + definition("sim-1g-8", 0, g).encode())
    attrs = (',{"sched_weight":"200"},{"sched_class":"interactive"},{"sched_cap_ppm":"500000"},'
             '{"sched_budget_us":"2000"},{"compat":"gen1"},{"mdev_other":"x"}')
    write("pool_state", "attrs", b"\x00" + definition("sim-2g-4", 2 * g, 2 * g, "auto", attrs)
          .encode())
    write("pool_state", "gpu9", b"\x40" + definition("sim-8g-1", 0, 8 * g).encode())
    write("pool_state", "gpu-settings", b"\x08" + b'{"version":1,"gpu":"gpu0","policy":'
          b'"equal-share","slice_ns":1000000,"watchdog_ns":50000000}')
    write("pool_state", "upper", b"\x01" + definition("sim-8g-1", 0, 8 * g).encode())
    write("pool_state", "old-gpu0", b"\x80" + state("gpu0", "sim-4g-2", 4 * g, 4 * g).encode())
    write("pool_state", "old-attrs", b"\x80" + state("gpu1", "sim-256m-4", 0, 256 << 20)
          .replace('"attrs":[]', '"compat":"gen1","attrs":[{"sched_weight":"4"},7]').encode())


# ---- bar0: guest memory init, then operations ----
def pkt(opcode, body, flags=0, tag=0x77):
    p = struct.pack("<HHI", opcode, flags, tag) + body
    return p + bytes(64 - len(p))


RW = 0x100000
IOVA, VRAM = 1, 0


def setup(q, entries_log2=2, engine=0):
    return bytes([3, q | (engine << 3), entries_log2])


def submit(q, p):
    return bytes([4, q]) + p


IDLE = bytes([6])


def bar0_init(rw=b"", ro=b""):
    return struct.pack("<H", len(rw)) + rw + bytes([len(ro)]) + ro


def bar0_seeds():
    fence = pkt(1, struct.pack("<B7xQQ", IOVA, RW + 0x8000, 0xfeed), flags=1)
    write("bar0", "fence", bar0_init() + setup(0) + submit(0, fence) + IDLE)
    copy_in = pkt(2, struct.pack("<BB6xQQQ", IOVA, VRAM, RW + 0x8000, 0x1000, 0x800))
    copy_out = pkt(2, struct.pack("<BB6xQQQ", VRAM, IOVA, 0x1000, RW + 0x9000, 0x800))
    fill = pkt(3, struct.pack("<B3xIQQ", VRAM, 0xdeadbeef, 0x4000, 0x1000))
    write("bar0", "copy", bar0_init(bytes(range(256)) * 2) + setup(1, 3, 1)
          + submit(1, copy_in) + submit(1, copy_out) + submit(1, fill) + IDLE)
    checksum = pkt(4, struct.pack("<II6Q", 3, 0, 0x100, 0x1000, 0x2000, 0, 0, 0))
    saxpy = pkt(4, struct.pack("<II6Q", 0, 0, 64, 0x3f800000, 0x1000, 0x2000, 0, 0))
    ts = pkt(6, struct.pack("<B7xQ", IOVA, RW + 0xa000))
    wait = pkt(5, struct.pack("<BB6xQQQ", IOVA, 0, RW + 0x8000, 0, 0xffffffffffffffff))
    write("bar0", "kernels", bar0_init() + setup(2) + submit(2, checksum) + submit(2, saxpy)
          + submit(2, ts) + submit(2, wait) + IDLE)
    regs = b"".join(bytes([0]) + struct.pack("<HBQ", off, 0, val)
                    for off, val in ((0x50, 7), (0x34, 0xff), (0x38, 3), (0x30, 0xffffffff)))
    reads = b"".join(bytes([1]) + struct.pack("<HBQ", off, sel, 0)
                     for off, sel in ((0, 0), (0x10, 3), (0x400, 0), (0x818, 0)))
    write("bar0", "regs", bar0_init() + regs + reads + bytes([8 | 0x80]))
    # A WAIT nobody satisfies under the time-slice scheduler's watchdog.
    stuck = pkt(5, struct.pack("<BB6xQQQ", IOVA, 1, RW + 0x8000, 1, 0xffffffffffffffff))
    write("bar0", "watchdog", bar0_init() + bytes([10, 0x80 | 2]) + struct.pack("<H", 1000)
          + setup(0) + setup(1, 2, 1) + submit(0, stuck) + submit(1, copy_out) + IDLE + IDLE)
    big = pkt(2, struct.pack("<BB6xQQQ", IOVA, VRAM, RW, 0x10000, 0x10000))
    write("bar0", "unmap", bar0_init() + setup(0, 1) + submit(0, big) + bytes([9]) + IDLE
          + bytes([9]) + submit(0, copy_out) + IDLE)


# ---- mig_stream: mode byte; made streams need no checksums here ----
def mig_made(mode, pages, dirty=b"", muts=(), cut=None):
    """A source of 16 pages (one byte each: 0 zero, else a pattern), 16
    bytes of state, pages dirtied between PRE_COPY rounds (mode bit 3),
    then XOR mutations (x, offset) and an optional cut."""
    b = bytes([mode]) + bytes(pages) + bytes(range(16))
    if mode & 8:
        b += bytes([len(dirty) // 3]) + dirty
    b += bytes([len(muts)]) + b"".join(bytes([x]) + struct.pack("<I", at) for x, at in muts)
    return b + (bytes([1]) + struct.pack("<I", cut) if cut is not None else bytes([0]))


def mig_stream_seeds():
    pages = [0, 3, 3, 0, 0, 0, 7, 200, 0, 9, 9, 9, 0, 1, 2, 0]
    write("mig_stream", "made_plain", mig_made(1, pages))
    write("mig_stream", "made_zstd_precopy", mig_made(1 | 2 | 8, pages, bytes([1, 5, 9, 3, 0, 4])))
    write("mig_stream", "made_flip", mig_made(1, pages, muts=[(0x10, 100)]))
    write("mig_stream", "made_flip_resealed", mig_made(1 | 4, pages, muts=[(0x01, 40)]))
    write("mig_stream", "made_cut", mig_made(1, pages, cut=5000))
    write("mig_stream", "raw_noise", bytes([0, 7]) + bytes(range(64)))


if __name__ == "__main__":
    vfu_seeds()
    ctl_seeds()
    pool_state_seeds()
    bar0_seeds()
    mig_stream_seeds()
