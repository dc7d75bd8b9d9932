//! A64, fixed-width: the calls (`bl imm26`, `b imm26`, and
//! `blr`/`blraa`/`blrab` through a register, with or without pointer
//! authentication), and the stores of a function's address. An address is
//! made by `adrp; add` (or `adr`, which ld.lld leaves of the pair where
//! the target is near: `nop; adr`) and stored by `str Xt, [Xn, #off]`:
//! into a member when `Xn` is a pointer, into a global when `Xn` was made
//! the same way. A `csel` holds either register's addresses, and what a
//! register holds flows along forward branches, so both arms of a `?:`
//! count. Locals are not read: the -O0 frame base is `x29` plus the
//! prologue's own frame size, per function.

use std::collections::HashMap;

use super::{RawCall, RawStore, StoreAt};

/// The addresses a register may hold, by register number.
type Holds = HashMap<u32, Vec<u64>>;

pub fn decode(
    addr: u64,
    code: &[u8],
    is_function: &dyn Fn(u64) -> bool,
) -> (Vec<RawCall>, Vec<RawStore>) {
    let mut out = Vec::new();
    let mut stores = Vec::new();
    let mut holds: Holds = HashMap::new();
    let mut joins: HashMap<u64, Holds> = HashMap::new();
    let end = addr + code.len() as u64;
    for (i, word) in code.chunks_exact(4).enumerate() {
        let insn = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        let site = addr + 4 * i as u64;
        for (register, values) in joins.remove(&site).into_iter().flatten() {
            let held = holds.entry(register).or_default();
            held.extend(values);
            held.sort_unstable();
            held.dedup();
        }
        let rd = insn & 0x1f;
        let rn = (insn >> 5) & 0x1f;
        let branch_target = || {
            // imm26, in words, sign-extended.
            let imm = ((insn & 0x03ff_ffff) << 6) as i32 >> 6;
            site.wrapping_add_signed(i64::from(imm) * 4)
        };
        // imm19 of b.cond, cbz and cbnz.
        let near_target = || {
            let imm = (((insn >> 5) & 0x7_ffff) << 13) as i32 >> 13;
            site.wrapping_add_signed(i64::from(imm) * 4)
        };
        let mut join_at = None;
        let mut falls_through = true;
        let mut written: Vec<u32> = Vec::new();
        let mut made: Option<Vec<u64>> = None;
        if insn & 0xfc00_0000 == 0x9400_0000 {
            out.push(RawCall::Direct {
                site,
                target: branch_target(),
            });
            written.extend((0..=18).chain([30]));
        } else if insn & 0xfc00_0000 == 0x1400_0000 {
            out.push(RawCall::Jump {
                site,
                target: branch_target(),
            });
            join_at = Some(branch_target());
            falls_through = false;
        } else if insn & 0xffff_fc1f == 0xd63f_0000 || insn & 0xfeff_f800 == 0xd63f_0800 {
            out.push(RawCall::Indirect {
                site,
                load: None,
                global: None,
            });
            written.extend((0..=18).chain([30]));
        } else if insn & 0xff00_0010 == 0x5400_0000 || insn & 0x7e00_0000 == 0x3400_0000 {
            // b.cond, cbz, cbnz.
            join_at = Some(near_target());
        } else if insn & 0xfe00_0000 == 0xd600_0000 {
            // br, ret and the like: nothing falls through.
            falls_through = false;
        } else if insn & 0x9f00_0000 == 0x9000_0000 {
            // adrp: the 4 KiB page.
            made = Some(vec![
                (site & !0xfff).wrapping_add_signed(adr_immediate(insn) << 12)
            ]);
            written.push(rd);
        } else if insn & 0x9f00_0000 == 0x1000_0000 {
            made = Some(vec![site.wrapping_add_signed(adr_immediate(insn))]);
            written.push(rd);
        } else if insn & 0xff80_0000 == 0x9100_0000 {
            // add Xd, Xn, #imm{, lsl 12}.
            let shift = if insn & (1 << 22) != 0 { 12 } else { 0 };
            let imm = u64::from((insn >> 10) & 0xfff) << shift;
            made = holds
                .get(&rn)
                .map(|v| v.iter().map(|a| a.wrapping_add(imm)).collect());
            written.push(rd);
        } else if insn & 0xffe0_ffe0 == 0xaa00_03e0 {
            // mov Xd, Xm (orr Xd, xzr, Xm).
            made = holds.get(&((insn >> 16) & 0x1f)).cloned();
            written.push(rd);
        } else if insn & 0xffe0_0c00 == 0x9a80_0000 {
            // csel Xd, Xn, Xm, cond: either.
            let rm = (insn >> 16) & 0x1f;
            let mut both: Vec<u64> = [rn, rm]
                .iter()
                .flat_map(|r| holds.get(r).into_iter().flatten().copied())
                .collect();
            both.sort_unstable();
            both.dedup();
            made = (!both.is_empty()).then_some(both);
            written.push(rd);
        } else if let Some(offset) = store_offset(insn) {
            // str Xt, [Xn, #off] (stur too): the stack and the frame are
            // locals; a base made by adrp/adr a global; else a member.
            let values: Vec<u64> = holds
                .get(&rd)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&v| is_function(v))
                .collect();
            let at = match holds.get(&rn).map(Vec::as_slice) {
                _ if rn == 31 || rn == 29 => None,
                Some(&[base]) => Some(StoreAt::Global(base.wrapping_add_signed(offset))),
                Some(_) => None,
                None => u64::try_from(offset).ok().map(StoreAt::Member),
            };
            for (value, at) in values.into_iter().zip(std::iter::repeat(at)) {
                if let Some(at) = at {
                    stores.push(RawStore { site, value, at });
                }
            }
        } else if insn & 0x0a00_0000 == 0x0800_0000 {
            // Another load or store: a load writes Rt (and a pair's Rt2).
            if insn & (1 << 22) != 0 {
                written.push(rd);
                if insn & 0x3800_0000 == 0x2800_0000 {
                    written.push((insn >> 10) & 0x1f);
                }
            }
        } else if insn & 0x1c00_0000 != 0x1400_0000 {
            // Data processing writes Rd (branches and system ones, none).
            written.push(rd);
        }
        if let Some(target) = join_at.filter(|&t| t > site && t < end) {
            let join = joins.entry(target).or_default();
            for (&register, values) in &holds {
                join.entry(register).or_default().extend(values);
            }
        }
        for r in written {
            holds.remove(&r);
        }
        if let Some(values) = made {
            holds.insert(rd, values);
        }
        if !falls_through {
            holds.clear();
        }
    }
    (out, stores)
}

/// adr's and adrp's 21-bit immediate (immhi:immlo), sign-extended.
fn adr_immediate(insn: u32) -> i64 {
    let imm = ((insn >> 5) & 0x7_ffff) << 2 | (insn >> 29) & 0x3;
    i64::from(((imm << 11) as i32) >> 11)
}

/// The offset of a 64-bit `str Xt, [Xn, #imm12 * 8]` or `stur Xt, [Xn,
/// #simm9]`.
fn store_offset(insn: u32) -> Option<i64> {
    if insn & 0xffc0_0000 == 0xf900_0000 {
        return Some(i64::from((insn >> 10) & 0xfff) * 8);
    }
    if insn & 0xffe0_0c00 == 0xf800_0000 {
        return Some(i64::from((((insn >> 12) & 0x1ff) << 23) as i32 >> 23));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
            decode(0x1000, &code, &|_| false).0,
            [
                RawCall::Direct {
                    site: 0x1000,
                    target: 0x1010
                },
                RawCall::Direct {
                    site: 0x1004,
                    target: 0x1000
                },
                RawCall::Indirect {
                    site: 0x1008,
                    load: None,
                    global: None
                },
                RawCall::Jump {
                    site: 0x100c,
                    target: 0x1014
                },
            ]
        );
    }

    /// Stores of a function's address that clang and ld.lld make for
    /// arm64 at -O0 (`nop; adr` where the linker relaxed `adrp; add`, a
    /// `csel` for the `?:`): against the linked program's own symbols.
    #[test]
    fn arm64_stores_into_a_member_and_a_global() {
        let dir = std::env::temp_dir().join(format!("xtask-a64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ops.c"),
            "struct ops { int id; void (*handler)(void); };\n\
             struct ops g;\n\
             void a(void) {}\n\
             void b(void) {}\n\
             void set(struct ops *p, int c) { p->handler = c ? a : b; g.handler = a; }\n\
             void _start(void) { set(&g, 1); }\n",
        )
        .unwrap();
        let run = |program: &str, args: &[&str]| {
            let status = std::process::Command::new(program)
                .current_dir(&dir)
                .args(args)
                .status()
                .unwrap_or_else(|e| panic!("{program}: {e}"));
            assert!(status.success(), "{program} {args:?}");
        };
        run(
            "clang",
            &[
                "--target=aarch64-linux-gnu",
                "-O0",
                "-fno-pic",
                "-c",
                "ops.c",
            ],
        );
        run(
            "ld.lld",
            &[
                "-m",
                "aarch64linux",
                "-static",
                "-e",
                "_start",
                "ops.o",
                "-o",
                "ops",
            ],
        );
        use object::{Object, ObjectSection, ObjectSymbol};
        let data = std::fs::read(dir.join("ops")).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let symbol = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let (a, b, g, set) = (
            symbol("a").address(),
            symbol("b").address(),
            symbol("g").address(),
            symbol("set"),
        );
        let text = file.section_by_name(".text").unwrap();
        let from = (set.address() - text.address()) as usize;
        let code = &text.data().unwrap()[from..from + set.size() as usize];
        let is_function = |v: u64| v == a || v == b;
        let (_, stores) = decode(set.address(), code, &is_function);
        let mut found: Vec<(u64, StoreAt)> = stores.iter().map(|s| (s.value, s.at)).collect();
        found.sort_by_key(|&(v, at)| (v, format!("{at:?}")));
        let mut expected = vec![
            (a, StoreAt::Member(8)),
            (b, StoreAt::Member(8)),
            (a, StoreAt::Global(g + 8)),
        ];
        expected.sort_by_key(|&(v, at)| (v, format!("{at:?}")));
        assert_eq!(found, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
