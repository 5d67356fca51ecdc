//! Commands as named step lists. A step is a function over one context (the
//! attachment being built, torn down or checked); a list runs its steps in
//! order. ADD and CHECK stop at the first failure (ADD then undoes what its
//! steps recorded, see [`crate::add::Undo`]); DEL runs every step and reports
//! the first failure.

use crate::error::BridgeError;

/// One named step of a command.
pub struct Step<C> {
    /// What the step does, as the docs and the tests name it.
    pub name: &'static str,
    /// The step; a step that does not apply to the config does nothing.
    pub run: fn(&mut C) -> Result<(), BridgeError>,
}

/// A failed step: its name and error.
#[derive(Debug)]
pub struct Failed {
    /// The step's name.
    pub step: &'static str,
    /// Why it failed.
    pub error: BridgeError,
}

/// Runs `steps` in order until one fails.
///
/// # Errors
/// The first failure, with its step's name.
pub fn run_until_failure<C>(steps: &[Step<C>], context: &mut C) -> Result<(), Failed> {
    for step in steps {
        (step.run)(context).map_err(|error| Failed {
            step: step.name,
            error,
        })?;
    }
    Ok(())
}

/// Runs every step, whatever fails, and returns the failures in order.
pub fn run_all<C>(steps: &[Step<C>], context: &mut C) -> Vec<Failed> {
    steps
        .iter()
        .filter_map(|step| {
            (step.run)(context).err().map(|error| Failed {
                step: step.name,
                error,
            })
        })
        .collect()
}

/// The names of a step list, in order.
pub fn names<C>(steps: &[Step<C>]) -> Vec<&'static str> {
    steps.iter().map(|step| step.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(n: u8) -> impl Fn(&mut Vec<u8>) {
        move |log| log.push(n)
    }

    const STEPS: [Step<Vec<u8>>; 3] = [
        Step {
            name: "one",
            run: |log| {
                push(1)(log);
                Ok(())
            },
        },
        Step {
            name: "two fails",
            run: |log| {
                push(2)(log);
                Err(BridgeError::Internal("two".to_owned()))
            },
        },
        Step {
            name: "three",
            run: |log| {
                push(3)(log);
                Err(BridgeError::Internal("three".to_owned()))
            },
        },
    ];

    #[test]
    fn run_until_failure_stops_at_the_first_failure() {
        let mut log = Vec::new();
        let failed = run_until_failure(&STEPS, &mut log).unwrap_err();
        assert_eq!(failed.step, "two fails");
        assert_eq!(log, [1, 2]);
    }

    #[test]
    fn run_all_keeps_going_and_reports_every_failure() {
        let mut log = Vec::new();
        let failed = run_all(&STEPS, &mut log);
        assert_eq!(log, [1, 2, 3]);
        let steps: Vec<_> = failed.iter().map(|f| f.step).collect();
        assert_eq!(steps, ["two fails", "three"]);
        assert_eq!(names(&STEPS), ["one", "two fails", "three"]);
    }
}
