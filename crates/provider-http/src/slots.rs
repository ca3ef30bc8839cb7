//! One result per request, in request order: what every provider answers.

use secrets_core::{Error, ErrorKind};

/// Results being filled in, one slot per request.
#[derive(Debug)]
pub struct Slots<T> {
    slots: Vec<Option<Result<T, Error>>>,
}

impl<T> Slots<T> {
    /// `len` empty slots.
    pub fn new(len: usize) -> Self {
        Self {
            slots: (0..len).map(|_| None).collect(),
        }
    }

    /// Fills slot `index` (a later fill replaces an earlier one).
    pub fn fill(&mut self, index: usize, result: Result<T, Error>) {
        self.slots[index] = Some(result);
    }

    /// Whether slot `index` is filled.
    pub fn is_filled(&self, index: usize) -> bool {
        self.slots[index].is_some()
    }

    /// The results in order; a slot never filled is an [`ErrorKind::Unexpected`] error (a
    /// provider bug, never silently a success).
    pub fn into_results(self) -> Vec<Result<T, Error>> {
        self.slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "the provider returned no result for this secret",
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_unfilled_is_an_error() {
        let mut slots = Slots::new(3);
        slots.fill(2, Ok("c"));
        slots.fill(0, Ok("a"));
        assert!(slots.is_filled(0) && !slots.is_filled(1));
        let results = slots.into_results();
        assert_eq!(results[0].as_ref().ok(), Some(&"a"));
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            ErrorKind::Unexpected
        );
        assert_eq!(results[2].as_ref().ok(), Some(&"c"));
    }
}
