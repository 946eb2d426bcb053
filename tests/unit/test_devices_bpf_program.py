"""The cgroup v2 device program: its instructions, run through a tiny eBPF
interpreter (no root, no kernel) for the allowed devices and ones that must
be denied; and restrict_devices choosing it on v2 cgroups."""

from __future__ import annotations

import struct

import pytest

from minipod import devices, devices_bpf as bpf
from minipod.devices import DEFAULT_ALLOWED_DEVICES
from minipod.errors import CgroupError

BLOCK, CHAR = bpf.BPF_DEVCG_DEV_BLOCK, bpf.BPF_DEVCG_DEV_CHAR
M, R, W = bpf.BPF_DEVCG_ACC_MKNOD, bpf.BPF_DEVCG_ACC_READ, bpf.BPF_DEVCG_ACC_WRITE
U32 = 0xFFFFFFFF


def decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) for each instruction."""
    assert len(program) % 8 == 0
    out = []
    for i in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", program, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the opcodes the assembler emits, on a struct bpf_cgroup_dev_ctx.
    Anything else fails the test, as would a jump out of the program or a read
    of a register never written (the kernel verifier refuses both)."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    insns = decode(program)
    regs: dict[int, int] = {1: -1}  # r1: the context "pointer"
    pc, steps = 0, 0
    while True:
        assert 0 <= pc < len(insns), f"pc {pc} outside the program"
        steps += 1
        assert steps <= len(insns), "a backward jump (loops are not emitted)"
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == bpf.LDX_MEM_W:
            assert regs[src] == -1 and off in (0, 4, 8), "only ctx fields are read"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == bpf.ALU32_MOV_X:
            regs[dst] = regs[src] & U32
        elif code == bpf.ALU32_MOV_K:
            regs[dst] = imm & U32
        elif code == bpf.ALU32_AND_K:
            regs[dst] = regs[dst] & imm & U32
        elif code == bpf.ALU32_RSH_K:
            regs[dst] = (regs[dst] & U32) >> imm
        elif code == bpf.JMP_JNE_K:
            assert off >= 0
            if regs[dst] != imm:  # 64-bit compare: 32-bit ALU results are zero-extended
                pc += off
        elif code == bpf.JMP_EXIT:
            return regs[0]
        else:
            pytest.fail(f"unexpected opcode {code:#x} at {pc - 1}")


PROGRAM = bpf.default_program()


@pytest.mark.parametrize("kind, major, minor, access", DEFAULT_ALLOWED_DEVICES)
def test_every_listed_device_is_allowed_exactly_its_access(kind, major, minor, access):
    dev_type = bpf.DEVICE_TYPES[kind]
    maj = 4711 if major == "*" else int(major)
    mnr = 99 if minor == "*" else int(minor)
    allowed = sum(bpf.ACCESS_BITS[c] for c in access)
    for ch in access:
        assert run(PROGRAM, dev_type, bpf.ACCESS_BITS[ch], maj, mnr) == 1
    assert run(PROGRAM, dev_type, allowed, maj, mnr) == 1


@pytest.mark.parametrize("name, dev_type, access, major, minor", [
    ("read the first disk", BLOCK, R, 8, 0),
    ("write the first disk", BLOCK, W, 8, 0),
    ("open a disk rw", BLOCK, R | W, 8, 0),
    ("loop0", BLOCK, R, 7, 0),
    ("/dev/mem", CHAR, R, 1, 1),
    ("/dev/kmem", CHAR, R | W, 1, 2),
    ("/dev/port", CHAR, W, 1, 4),
    ("/dev/kmsg", CHAR, R, 1, 11),
    ("a host tty", CHAR, R | W, 4, 1),
    ("/dev/ptmx's neighbour", CHAR, R, 5, 3),
    ("tun's neighbour", CHAR, R, 10, 201),
    ("/dev/null as a block device", BLOCK, R, 1, 3),
    ("pts major as a block device", BLOCK, R, 136, 0),
    ("mknod plus read of the disk", BLOCK, M | R, 8, 0),
])
def test_devices_outside_the_list_are_denied(name, dev_type, access, major, minor):
    assert run(PROGRAM, dev_type, access, major, minor) == 0, name


def test_making_any_node_is_allowed():
    for dev_type in (BLOCK, CHAR):
        assert run(PROGRAM, dev_type, M, 8, 0) == 1
        assert run(PROGRAM, dev_type, M, 1, 1) == 1


def test_partial_access_rule_needs_every_requested_bit():
    program = bpf.assemble([("c", "1", "3", "r")])
    assert run(program, CHAR, R, 1, 3) == 1
    assert run(program, CHAR, R | W, 1, 3) == 0  # "r" is not "rw", as on v1
    assert run(program, CHAR, W, 1, 3) == 0
    assert run(program, CHAR, R, 1, 4) == 0


def test_instruction_layout():
    insns = decode(PROGRAM)
    # Prologue: access_type split into type (r2) and access (r3), then major (r4) and minor (r5).
    assert insns[:6] == [
        (bpf.LDX_MEM_W, 2, 1, 0, 0), (bpf.ALU32_MOV_X, 3, 2, 0, 0), (bpf.ALU32_AND_K, 2, 0, 0, 0xFFFF),
        (bpf.ALU32_RSH_K, 3, 0, 0, 16), (bpf.LDX_MEM_W, 4, 1, 4, 0), (bpf.LDX_MEM_W, 5, 1, 8, 0)]
    # Default deny at the end, one "return 1" per rule.
    assert insns[-2:] == [(bpf.ALU32_MOV_K, 0, 0, 0, 0), (bpf.JMP_EXIT, 0, 0, 0, 0)]
    returns = [i for i, ins in enumerate(insns) if ins == (bpf.ALU32_MOV_K, 0, 0, 0, 1)]
    assert len(returns) == len(DEFAULT_ALLOWED_DEVICES)
    # Every jump lands inside the program, on the start of the next rule.
    for i, (code, *_rest) in enumerate(insns):
        if code == bpf.JMP_JNE_K:
            target = i + 1 + insns[i][3]
            assert target < len(insns) and (target == len(insns) - 2 or target - 2 in returns)
    # The kernel's limit for unprivileged loaders is 4096; this stays tiny.
    assert len(insns) < 100


def test_c_1_3_rwm_block():
    # type, major, minor: three compares; full access needs no access check.
    assert decode(bpf.assemble([("c", "1", "3", "rwm")]))[6:11] == [
        (bpf.JMP_JNE_K, 2, 0, 4, CHAR), (bpf.JMP_JNE_K, 4, 0, 3, 1), (bpf.JMP_JNE_K, 5, 0, 2, 3),
        (bpf.ALU32_MOV_K, 0, 0, 0, 1), (bpf.JMP_EXIT, 0, 0, 0, 0)]


def test_the_default_program_is_assembled_once():
    assert bpf.default_program() is bpf.default_program()
    assert bpf.default_program() == bpf.assemble(DEFAULT_ALLOWED_DEVICES)


@pytest.mark.parametrize("rule, words", [
    (("a", "*", "*", "rwm"), "type"),
    (("c", "x", "*", "rwm"), "major"),
    (("c", "1", "-1", "rwm"), "minor"),
    (("c", "1", "3", "rx"), "access"),
    (("c", "1", "3", ""), "access"),
])
def test_bad_rules_are_cgroup_errors(rule, words):
    with pytest.raises(CgroupError, match=words):
        bpf.assemble([rule])


def test_license_and_name_fit_the_kernel_fields():
    assert len(bpf.PROG_NAME) < 16 and bpf.PROG_NAME.replace(b"_", b"").isalnum()
    assert b"\0" not in bpf.LICENSE


class _FakeV2:
    kind = "v2"

    def __init__(self, directory):
        self.directory = directory

    def controller_dir(self, controller):
        return self.directory


def test_v2_cgroup_gets_the_program(monkeypatch, tmp_path):
    attached = []
    monkeypatch.setattr(bpf, "attach_device_program", attached.append)
    assert devices.restrict_devices(_FakeV2(str(tmp_path)), privileged=False) == []
    assert attached == [str(tmp_path)]
    assert devices.restrict_devices(_FakeV2(str(tmp_path)), privileged=True) == []
    assert attached == [str(tmp_path)]  # privileged: nothing attached


def test_v2_attach_failure_is_a_cgroup_error(tmp_path):
    # A plain directory is no cgroup: the kernel refuses (or, without bpf, fails to load).
    with pytest.raises(CgroupError):
        devices.restrict_devices(_FakeV2(str(tmp_path / "missing")), privileged=False)
