//! Twin files kept in sync with the backend (issue 11, reference §8.2): the three-way merge of
//! `metadata` (`merge`) and what a file may push (`payload`). The sync state and its thread
//! come next.

pub mod merge;
pub mod payload;
