//! Integration tests of the MCP server with a real client: the official Python MCP
//! SDK drives the real `meanwhile mcp` binary over stdio and a real daemon over
//! streamable HTTP; each scenario script reports what it saw as JSON, checked here.

mod http;
mod stdio;
mod support;
