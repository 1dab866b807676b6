//! The client against a real daemon on its own socket and home.

mod support;

mod backend;
mod resend;
