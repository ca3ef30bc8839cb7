//! The values of a resolution as a log masker, for a runner that masks its job trace.

use crate::resolver::Resolution;
use secrets_core::masker::Masker;

impl Resolution {
    /// A masker for every resolved value (and the forms of each that are masked), to filter the
    /// job's output through, as GitLab Runner masks its trace. See [`secrets_core::masker`].
    pub fn masker(&self) -> Masker {
        Masker::for_variables(&self.variables)
    }
}
