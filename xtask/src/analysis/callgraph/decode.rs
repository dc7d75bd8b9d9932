//! The calls in one function's machine code: direct calls with their
//! target, indirect calls, and jumps that may be tail calls.

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
            | RawCall::Indirect { site }
            | RawCall::Jump { site, .. } => site,
        }
    }
}

/// The calls in `code`, which starts at `addr`.
pub fn decode_calls(isa: Isa, addr: u64, code: &[u8]) -> Vec<RawCall> {
    match isa {
        Isa::X86_64 => x86_64(addr, code),
        Isa::Aarch64 => aarch64(addr, code),
    }
}

/// How far back a `movabs $target, %reg` may be for `call *%reg` to count
/// as a direct call of `target`.
const LOADED_WITHIN: usize = 4;

/// UML is built with `-mcmodel=large`: a direct call in the source is
/// `movabs $target, %reg; call *%reg`, which counts as direct here when no
/// instruction wrote the register in between.
fn x86_64(addr: u64, code: &[u8]) -> Vec<RawCall> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut loaded: HashMap<Register, (u64, usize)> = HashMap::new();
    let mut out = Vec::new();
    for (n, instruction) in (&mut decoder).into_iter().enumerate() {
        let site = instruction.ip();
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
                out.push(match through {
                    Some(&(target, _)) => RawCall::Direct { site, target },
                    None => RawCall::Indirect { site },
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
        if instruction.code() == Code::Mov_r64_imm64 {
            loaded.insert(instruction.op0_register(), (instruction.immediate64(), n));
            continue;
        }
        for used in info.info(&instruction).used_registers() {
            if matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                loaded.remove(&used.register().full_register());
            }
        }
    }
    out
}

/// A64 is fixed-width: `bl imm26`, `b imm26`, and `blr`/`blraa`/`blrab`
/// (with or without pointer authentication) through a register.
fn aarch64(addr: u64, code: &[u8]) -> Vec<RawCall> {
    let mut out = Vec::new();
    for (i, word) in code.chunks_exact(4).enumerate() {
        let insn = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        let site = addr + 4 * i as u64;
        let branch_target = || {
            // imm26, in words, sign-extended.
            let imm = ((insn & 0x03ff_ffff) << 6) as i32 >> 6;
            site.wrapping_add_signed(i64::from(imm) * 4)
        };
        if insn & 0xfc00_0000 == 0x9400_0000 {
            out.push(RawCall::Direct {
                site,
                target: branch_target(),
            });
        } else if insn & 0xfc00_0000 == 0x1400_0000 {
            out.push(RawCall::Jump {
                site,
                target: branch_target(),
            });
        } else if insn & 0xffff_fc1f == 0xd63f_0000 || insn & 0xfeff_f800 == 0xd63f_0800 {
            out.push(RawCall::Indirect { site });
        }
    }
    out
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
            x86_64(0x1000, &code),
            [
                RawCall::Direct {
                    site: 0x1000,
                    target: 0x1015
                },
                RawCall::Indirect { site: 0x1005 },
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
            x86_64(0x1000, &code),
            [
                RawCall::Direct {
                    site: 0x100a,
                    target: 0x2000
                },
                RawCall::Indirect { site: 0x100f },
            ]
        );
    }

    #[test]
    fn arm64_bl_b_and_blr() {
        let words: [u32; 4] = [
            0x9400_0004, // bl +16
            0x97ff_ffff, // bl -4
            0xd63f_0100, // blr x8
            0x1400_0002, // b +8
        ];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            aarch64(0x1000, &code),
            [
                RawCall::Direct {
                    site: 0x1000,
                    target: 0x1010
                },
                RawCall::Direct {
                    site: 0x1004,
                    target: 0x1000
                },
                RawCall::Indirect { site: 0x1008 },
                RawCall::Jump {
                    site: 0x100c,
                    target: 0x1014
                },
            ]
        );
    }
}
