//! The calls in one function's machine code: direct calls with their
//! target, indirect calls, and jumps that may be tail calls; and the
//! stores of a function's address: into a member through a pointer
//! (`sk->sk_destruct = inet_sock_destruct`, at -O0 `movq $fn, OFF(%reg)`),
//! into a global (`movq $fn, sym+OFF(%rip)`), or into a local on the -O0
//! frame (`struct skb_checksum_ops ops = { .update = fn }`, `movq $fn,
//! OFF(%rbp)`). A register may hold several functions where paths join
//! (`skb->destructor = c ? __sock_wfree : tcp_wfree` loads each on its own
//! branch): what it holds flows along each forward jump to its target.
//! x86_64 (and um) here, with iced-x86; A64 in [`aarch64`].

mod aarch64;

use std::collections::HashMap;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, OpAccess, OpKind, Register,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86_64, and User-Mode Linux on it.
    X86_64,
    Aarch64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawCall {
    Direct {
        site: u64,
        target: u64,
    },
    Indirect {
        site: u64,
        /// The offset of the load that fed the called register, `mov
        /// OFF(%base),%reg` with `%base` not the frame or stack pointer
        /// (through register copies): at -O0, the member called through.
        load: Option<u64>,
        /// The address of the global the called register was loaded from
        /// (`mov sym(%rip),%reg`, or `call *sym(%rip)`): a function
        /// pointer that is a global.
        global: Option<u64>,
    },
    /// An unconditional jump to a fixed address (a tail call when it lands
    /// on another function's start).
    Jump {
        site: u64,
        target: u64,
    },
}

impl RawCall {
    pub fn site(&self) -> u64 {
        match *self {
            RawCall::Direct { site, .. }
            | RawCall::Indirect { site, .. }
            | RawCall::Jump { site, .. } => site,
        }
    }
}

/// A function's address stored by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStore {
    /// The storing instruction.
    pub site: u64,
    /// The function's address.
    pub value: u64,
    pub at: StoreAt,
}

/// Where a store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAt {
    /// A member, at this offset from a pointer.
    Member(u64),
    /// A global, at this address (RIP-relative or absolute).
    Global(u64),
    /// A local, at this offset from the frame base DWARF's `DW_OP_fbreg`
    /// counts from (the CFA: `%rbp + 16` once the -O0 prologue `push
    /// %rbp; mov %rsp,%rbp` ran).
    Frame(i64),
}

/// The calls in `code`, which starts at `addr`, and the stores of an
/// address `is_function` accepts (on arm64, into members and globals: see
/// [`aarch64`]).
pub fn decode(
    isa: Isa,
    addr: u64,
    code: &[u8],
    is_function: &dyn Fn(u64) -> bool,
) -> (Vec<RawCall>, Vec<RawStore>) {
    match isa {
        Isa::X86_64 => x86_64(addr, code, is_function),
        Isa::Aarch64 => aarch64::decode(addr, code, is_function),
    }
}

/// How far back a `movabs $target, %reg` may be for `call *%reg` to count
/// as a direct call of `target`.
const LOADED_WITHIN: usize = 4;

/// UML is built with `-mcmodel=large`: a direct call in the source is
/// `movabs $target, %reg; call *%reg`, which counts as direct here when no
/// instruction wrote the register in between.
fn x86_64(
    addr: u64,
    code: &[u8],
    is_function: &dyn Fn(u64) -> bool,
) -> (Vec<RawCall>, Vec<RawStore>) {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut loaded: HashMap<Register, (u64, usize)> = HashMap::new();
    let mut fed: HashMap<Register, Fed> = HashMap::new();
    // Registers that hold a function's address, and those that hold a
    // member's address (`lea OFF(%base),%reg`, as WRITE_ONCE takes it).
    let mut holds: Holds = HashMap::new();
    let mut member_at: HashMap<Register, u64> = HashMap::new();
    // What registers hold at a forward jump's target, from each jump there.
    let mut joins: HashMap<u64, Holds> = HashMap::new();
    // The -O0 frame: `%rbp` set from `%rsp` (after `push %rbp`), and not
    // written since.
    let mut framed = false;
    let mut pushed_rbp = false;
    let mut out = Vec::new();
    let mut stores = Vec::new();
    for (n, instruction) in (&mut decoder).into_iter().enumerate() {
        let site = instruction.ip();
        for (register, values) in joins.remove(&site).into_iter().flatten() {
            let held = holds.entry(register).or_default();
            held.extend(values);
            held.sort_unstable();
            held.dedup();
        }
        if let Some((values, at)) = address_store(&instruction, &holds, &member_at, framed) {
            for &value in values.iter().filter(|&&v| is_function(v)) {
                stores.push(RawStore { site, value, at });
            }
        }
        match instruction.flow_control() {
            FlowControl::Call => out.push(RawCall::Direct {
                site,
                target: instruction.near_branch_target(),
            }),
            FlowControl::IndirectCall => {
                let through = (instruction.op0_kind() == OpKind::Register)
                    .then(|| loaded.get(&instruction.op0_register().full_register()))
                    .flatten()
                    .filter(|(_, at)| n - at <= LOADED_WITHIN);
                let fed = match instruction.op0_kind() {
                    OpKind::Register => fed
                        .get(&instruction.op0_register().full_register())
                        .copied(),
                    // `call *OFF(%base)`, as -Og writes it.
                    OpKind::Memory => loaded_from(&instruction),
                    _ => None,
                };
                let (load, global) = match fed {
                    Some(Fed::Member(offset)) => (Some(offset), None),
                    Some(Fed::Global(at)) => (None, Some(at)),
                    None => (None, None),
                };
                out.push(match through {
                    Some(&(target, _)) => RawCall::Direct { site, target },
                    None => RawCall::Indirect { site, load, global },
                });
            }
            FlowControl::UnconditionalBranch if instruction.near_branch_target() != 0 => {
                out.push(RawCall::Jump {
                    site,
                    target: instruction.near_branch_target(),
                })
            }
            _ => {}
        }
        let flow = instruction.flow_control();
        if matches!(
            flow,
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) {
            let target = instruction.near_branch_target();
            if target > site && target < addr + code.len() as u64 {
                let join = joins.entry(target).or_default();
                for (&register, values) in &holds {
                    join.entry(register).or_default().extend(values);
                }
            }
        }
        let held = function_address(&instruction).filter(|&v| is_function(v));
        let member = (instruction.code() == Code::Lea_r64_m)
            .then(|| member_address(&instruction))
            .flatten();
        let feed = member_load(&instruction, &fed);
        for used in info.info(&instruction).used_registers() {
            if matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                let written = used.register().full_register();
                if written == Register::RBP {
                    framed = pushed_rbp
                        && instruction.op1_kind() == OpKind::Register
                        && instruction.op1_register() == Register::RSP;
                }
                loaded.remove(&written);
                fed.remove(&written);
                holds.remove(&written);
                member_at.remove(&written);
            }
        }
        if let Some((register, offset)) = feed {
            fed.insert(register, offset);
        }
        let to = instruction.op0_register().full_register();
        if let Some(value) = held {
            holds.insert(to, vec![value]);
        }
        pushed_rbp =
            instruction.code() == Code::Push_r64 && instruction.op0_register() == Register::RBP;
        // Nothing falls through a jump or a return: what follows is
        // reached from the jumps to it.
        if matches!(
            flow,
            FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return
        ) {
            holds.clear();
        }
        if let Some(offset) = member {
            member_at.insert(to, offset);
        }
        if instruction.code() == Code::Mov_r64_imm64 {
            loaded.insert(instruction.op0_register(), (instruction.immediate64(), n));
        }
    }
    (out, stores)
}

/// The address a register is loaded with: `movabs $a`, `mov $a` (sign
/// extended, the kernel's code model) or `lea a(%rip)`.
fn function_address(instruction: &iced_x86::Instruction) -> Option<u64> {
    (instruction.op0_kind() == OpKind::Register).then_some(())?;
    match instruction.code() {
        Code::Mov_r64_imm64 => Some(instruction.immediate64()),
        Code::Mov_rm64_imm32 => Some(instruction.immediate32to64() as u64),
        Code::Lea_r64_m if instruction.memory_base() == Register::RIP => {
            Some(instruction.memory_displacement64())
        }
        _ => None,
    }
}

/// The functions a register may hold, by register.
type Holds = HashMap<Register, Vec<u64>>;

/// A store of an address: `movq $a, MEM`, or `mov %reg, MEM` with `%reg`
/// holding one (or several, where paths joined); `MEM` a member (see
/// [`member_address`]) or a displacement from a member's address, a
/// global, or a local of the -O0 frame (`framed`).
fn address_store(
    instruction: &iced_x86::Instruction,
    holds: &Holds,
    member_at: &HashMap<Register, u64>,
    framed: bool,
) -> Option<(Vec<u64>, StoreAt)> {
    (instruction.op0_kind() == OpKind::Memory).then_some(())?;
    let values = match instruction.code() {
        Code::Mov_rm64_imm32 => vec![instruction.immediate32to64() as u64],
        Code::Mov_rm64_r64 => holds
            .get(&instruction.op1_register().full_register())?
            .clone(),
        _ => return None,
    };
    let base = instruction.memory_base().full_register();
    let displacement = instruction.memory_displacement64();
    let at = match base {
        _ if instruction.memory_index() != Register::None => return None,
        Register::RIP | Register::None => StoreAt::Global(displacement),
        Register::RBP if framed => StoreAt::Frame(displacement as i64 - 16),
        _ => {
            let offset = member_address(instruction)?;
            StoreAt::Member(
                member_at
                    .get(&base)
                    .map_or(offset, |at| at.wrapping_add(offset)),
            )
        }
    };
    Some((values, at))
}

/// The offset of a memory operand `OFF(%base)` that reads a member
/// through a pointer: no index, `%base` neither the frame, stack nor
/// instruction pointer (those are locals and globals).
fn member_address(instruction: &iced_x86::Instruction) -> Option<u64> {
    let base = instruction.memory_base();
    let pointer = !matches!(
        base,
        Register::None | Register::RBP | Register::RSP | Register::RIP
    );
    (pointer && instruction.memory_index() == Register::None)
        .then(|| instruction.memory_displacement64())
}

/// Where a register's value was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fed {
    /// A member, at this offset from a pointer.
    Member(u64),
    /// A global, at this address.
    Global(u64),
}

/// What a memory operand reads: a member through a pointer (see
/// [`member_address`]), or a global (`sym(%rip)`, or an absolute address).
fn loaded_from(instruction: &iced_x86::Instruction) -> Option<Fed> {
    let global = matches!(instruction.memory_base(), Register::RIP | Register::None)
        && instruction.memory_index() == Register::None;
    match global {
        true => Some(Fed::Global(instruction.memory_displacement64())),
        false => member_address(instruction).map(Fed::Member),
    }
}

/// What a 64-bit `mov` into a register loads: a member at an offset from
/// a pointer (`mov OFF(%base),%reg`, no index, `%base` neither the frame,
/// stack nor instruction pointer: those are locals and globals), a global,
/// or what the register it copies held.
fn member_load(
    instruction: &iced_x86::Instruction,
    fed: &HashMap<Register, Fed>,
) -> Option<(Register, Fed)> {
    let to = instruction.op0_register().full_register();
    match instruction.code() {
        Code::Mov_r64_rm64 if instruction.op1_kind() == OpKind::Memory => {
            loaded_from(instruction).map(|fed| (to, fed))
        }
        Code::Mov_r64_rm64 | Code::Mov_rm64_r64 if instruction.op1_kind() == OpKind::Register => {
            let from = instruction.op1_register().full_register();
            (instruction.op0_kind() == OpKind::Register).then_some(())?;
            fed.get(&from).map(|&offset| (to, offset))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_calls_jumps_and_indirect_calls() {
        // call +0 (rel32 = 0x10); call *%rax; jmp rel32; ret
        let code = [
            0xe8, 0x10, 0x00, 0x00, 0x00, // call 0x1015
            0xff, 0xd0, // call *%rax
            0xe9, 0x00, 0x01, 0x00, 0x00, // jmp 0x110c
            0xc3,
        ];
        assert_eq!(
            x86_64(0x1000, &code, &|_| false).0,
            [
                RawCall::Direct {
                    site: 0x1000,
                    target: 0x1015
                },
                RawCall::Indirect {
                    site: 0x1005,
                    load: None,
                    global: None
                },
                RawCall::Jump {
                    site: 0x1007,
                    target: 0x110c
                },
            ]
        );
    }

    #[test]
    fn a_large_model_call_through_a_loaded_register_is_direct() {
        let code = [
            0x48, 0xb8, 0x00, 0x20, 0, 0, 0, 0, 0, 0, // movabs $0x2000, %rax
            0xff, 0xd0, // call *%rax: direct, to 0x2000
            0x48, 0x8b, 0x07, // mov (%rdi), %rax
            0xff, 0xd0, // call *%rax: indirect
        ];
        assert_eq!(
            x86_64(0x1000, &code, &|_| false).0,
            [
                RawCall::Direct {
                    site: 0x100a,
                    target: 0x2000
                },
                RawCall::Indirect {
                    site: 0x100f,
                    load: Some(0),
                    global: None
                },
            ]
        );
    }

    /// The member an indirect call goes through: the load that fed the
    /// register, through a copy, or the memory operand of the call; not a
    /// local's stack slot.
    #[test]
    fn the_member_load_that_feeds_an_indirect_call() {
        let code = [
            0x48, 0x8b, 0x40, 0x28, // mov 0x28(%rax), %rax
            0x4c, 0x8b, 0x40, 0x08, // mov 0x8(%rax), %r8
            0x48, 0x89, 0xdf, // mov %rbx, %rdi
            0x41, 0xff, 0xd0, // call *%r8: member at 8
            0x48, 0x8b, 0x45, 0xe8, // mov -0x18(%rbp), %rax: a local
            0xff, 0xd0, // call *%rax: no member
            0x41, 0xff, 0x54, 0x24, 0x10, // call *0x10(%r12): member at 16
            0x4c, 0x89, 0xc1, // mov %r8, %rcx: a copy
            0xff, 0xd1, // call *%rcx: member at 8
        ];
        let loads: Vec<Option<u64>> = x86_64(0x1000, &code, &|_| false)
            .0
            .into_iter()
            .map(|c| match c {
                RawCall::Indirect { load, .. } => load,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(loads, [Some(8), None, Some(16), Some(8)]);
    }

    /// A function's address stored through a pointer, into a global and
    /// into a local of the -O0 frame; a register that holds one of two
    /// functions where a `?:` joins (`skb->destructor = c ? __sock_wfree :
    /// tcp_wfree`, which stored only the second before); a call through
    /// a global pointer.
    #[test]
    fn stores_of_a_functions_address_and_a_call_through_a_global() {
        let code = [
            0x55, // 0x1000 push %rbp
            0x48, 0x89, 0xe5, // 0x1001 mov %rsp,%rbp
            0x74, 0x09, // 0x1004 je 0x100f
            0x48, 0xc7, 0xc2, 0x00, 0x20, 0, 0, // 0x1006 mov $0x2000,%rdx
            0xeb, 0x07, // 0x100d jmp 0x1016
            0x48, 0xc7, 0xc2, 0x00, 0x30, 0, 0, // 0x100f mov $0x3000,%rdx
            0x48, 0x89, 0x50, 0x60, // 0x1016 mov %rdx,0x60(%rax)
            0x48, 0xc7, 0x45, 0xf0, 0x00, 0x20, 0, 0, // 0x101a movq $0x2000,-0x10(%rbp)
            0x48, 0xc7, 0x05, 0xeb, 0x0f, 0, 0, 0x00, 0x30, 0,
            0, // 0x1022 movq $0x3000,0x2018(%rip)
            0x48, 0x8b, 0x05, 0xec, 0x0f, 0, 0, // 0x102d mov 0x2020(%rip),%rax
            0xff, 0xd0, // 0x1034 call *%rax
        ];
        let is_function = |v: u64| v == 0x2000 || v == 0x3000;
        let (calls, stores) = x86_64(0x1000, &code, &is_function);
        let store = |site, value, at| RawStore { site, value, at };
        assert_eq!(
            stores,
            [
                store(0x1016, 0x2000, StoreAt::Member(0x60)),
                store(0x1016, 0x3000, StoreAt::Member(0x60)),
                store(0x101a, 0x2000, StoreAt::Frame(-0x20)),
                store(0x1022, 0x3000, StoreAt::Global(0x2018)),
            ]
        );
        assert!(calls.contains(&RawCall::Indirect {
            site: 0x1034,
            load: None,
            global: Some(0x2020)
        }));
        // Without the -O0 prologue, %rbp is no frame: no local is named.
        let (_, stores) = x86_64(0x1000, &code[4..], &is_function);
        assert!(
            !stores.iter().any(|s| matches!(s.at, StoreAt::Frame(_))),
            "{stores:?}"
        );
    }
}
