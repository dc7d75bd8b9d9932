//! `cargo xtask ci`: the matrix in ci/matrix.toml, run locally step for step
//! as GitHub Actions runs it, or written out as the workflow.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    ci::{
        matrix::{Entry, Matrix, MATRIX, TEST},
        rows::{check_kvm, run_rows, table, Row, StepResult},
        workflow::{workflow, WORKFLOW},
    },
    cli,
    ctx::Ctx,
    study::{arch::Arch, host_tools},
};

impl cli::Ci {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let matrix = Matrix::load(&ctx.ci_dir())?;
        if self.write_workflow {
            let tools = host_tools::load(&ctx.study_dir())?;
            let study = ctx.study_dir();
            let text = workflow(&matrix, &tools, |arch| {
                Arch::load(&study, arch).map(|a| a.image)
            })?;
            ctx.exec.write(&ctx.root.join(WORKFLOW), &text)?;
            eprintln!("{WORKFLOW} written from {MATRIX} and study/host-tools.toml");
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Row> = if self.entries.is_empty() {
            std::iter::once(Row::Test)
                .chain(matrix.entry.iter().filter(|e| e.local).map(Row::Entry))
                .collect()
        } else {
            self.entries
                .iter()
                .map(|n| {
                    if n == TEST {
                        Ok(Row::Test)
                    } else {
                        matrix.entry(n).map(Row::Entry)
                    }
                })
                .collect::<Result<_>>()?
        };
        if self.check_kvm {
            let entries: Vec<&Entry> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Entry(e) => Some(*e),
                    Row::Test => None,
                })
                .collect();
            check_kvm(ctx, &matrix, &entries)?;
            return Ok(ExitCode::SUCCESS);
        }
        let outcomes = run_rows(ctx, &matrix, &rows)?;
        print!("{}", table(&outcomes));
        let failed = outcomes.iter().any(|o| o.result == StepResult::Fail);
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
