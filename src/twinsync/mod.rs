//! Twin files kept in sync with the backend (issue 11, reference §8.2): the three-way merge of
//! `metadata` (`merge`), what a file may push (`payload`), the persisted per-twin state
//! (`state`), one twin's step (`engine`) and the thread that runs them (`run`).

pub mod engine;
pub mod merge;
pub mod payload;
pub mod run;
pub mod state;
