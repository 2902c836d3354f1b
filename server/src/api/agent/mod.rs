//! Agent API v1.
pub mod enroll;
pub mod job_poll;
pub mod job_result;
pub mod release;
pub mod report;
