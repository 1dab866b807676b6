//! Integration tests of meanwhile-llm against scripted providers on real HTTP.

mod anthropic;
mod config;
mod failures;
mod openai;
mod support;
