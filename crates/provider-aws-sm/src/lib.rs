//! provider-aws-sm
