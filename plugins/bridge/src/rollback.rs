//! Undo records for a failing ADD: a step records how to undo what it is
//! about to change before it can half-succeed; on failure the records are
//! undone newest first, every one of them, and their own failures are
//! reported on stderr without hiding the original error.

/// A stack of undo records of type `U`.
#[derive(Debug)]
pub struct Rollback<U> {
    records: Vec<U>,
}

impl<U> Default for Rollback<U> {
    fn default() -> Self {
        Rollback {
            records: Vec::new(),
        }
    }
}

impl<U> Rollback<U> {
    /// Records how to undo a step that is about to change something.
    pub fn push(&mut self, record: U) {
        self.records.push(record);
    }

    /// Failure: undoes every record, newest first, with `undo`, which names
    /// what it undid. Returns the failures as `what: why`.
    pub fn unwind(
        self,
        mut undo: impl FnMut(U) -> (&'static str, Result<(), String>),
    ) -> Vec<String> {
        let mut failures = Vec::new();
        for record in self.records.into_iter().rev() {
            if let (what, Err(err)) = undo(record) {
                eprintln!("rollback: {what}: {err}");
                failures.push(format!("{what}: {err}"));
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwind_runs_in_reverse_and_continues_past_failures() {
        let mut rollback = Rollback::default();
        for n in 1..=3 {
            rollback.push(n);
        }
        let mut log = Vec::new();
        let failures = rollback.unwind(|n| {
            log.push(n);
            (
                "step",
                if n == 2 {
                    Err("boom".to_owned())
                } else {
                    Ok(())
                },
            )
        });
        assert_eq!(failures, vec!["step: boom".to_owned()]);
        assert_eq!(log, vec![3, 2, 1]);
    }
}
