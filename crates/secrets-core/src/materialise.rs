//! Resolved secrets as job variables and private files.
