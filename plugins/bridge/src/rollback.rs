//! Undo actions for a failing ADD: each completed step pushes how to undo
//! it; on failure they run in reverse order, every one of them, and their
//! own failures are reported on stderr without hiding the original error.

/// One undo action.
type Undo<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;

/// A stack of undo actions.
#[derive(Default)]
pub struct Rollback<'a> {
    steps: Vec<(&'static str, Undo<'a>)>,
}

impl<'a> Rollback<'a> {
    /// Records how to undo a step that has just succeeded.
    pub fn push(&mut self, what: &'static str, undo: impl FnOnce() -> Result<(), String> + 'a) {
        self.steps.push((what, Box::new(undo)));
    }

    /// Success: forget the undo actions.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Failure: run every undo action, newest first. Returns the failures.
    pub fn unwind(mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(err) = undo() {
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
    use std::cell::RefCell;

    #[test]
    fn unwind_runs_in_reverse_and_continues_past_failures() {
        let log = RefCell::new(Vec::new());
        let mut rollback = Rollback::default();
        rollback.push("first", || {
            log.borrow_mut().push(1);
            Ok(())
        });
        rollback.push("second", || {
            log.borrow_mut().push(2);
            Err("boom".to_owned())
        });
        rollback.push("third", || {
            log.borrow_mut().push(3);
            Ok(())
        });
        assert_eq!(rollback.unwind(), vec!["second: boom".to_owned()]);
        assert_eq!(*log.borrow(), vec![3, 2, 1]);
    }

    #[test]
    fn commit_runs_nothing() {
        let ran = RefCell::new(false);
        let mut rollback = Rollback::default();
        rollback.push("x", || {
            *ran.borrow_mut() = true;
            Ok(())
        });
        rollback.commit();
        assert!(!*ran.borrow());
    }
}
