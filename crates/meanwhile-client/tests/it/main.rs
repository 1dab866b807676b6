//! The client against a real daemon on its own socket and home.

mod backend;
mod resend;
