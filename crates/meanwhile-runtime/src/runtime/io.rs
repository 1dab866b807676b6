//! A task's output and input: reading the log here or, in a fleet, from the node
//! that runs it, waiting on it, and sending input to a task's stdin or terminal
//! through its supervisor's socket.

use super::*;

impl Runtime {
    /// Reads a task's output as `query` says; see [`OutputQuery`]. In a fleet, the
    /// output of a task whose last attempt ran on another node is read through that
    /// node (see [`RuntimeConfig::remote_output`]).
    pub async fn read_output(&self, id: TaskId, query: OutputQuery) -> Result<OutputChunk> {
        query.check()?;
        compile(query.grep.as_deref(), "grep")?;
        if let Some(node) = self.output_node(id).await? {
            return self.read_remote(id, &node, query).await;
        }
        self.read_output_here(id, query).await
    }

    /// Sends input to a running task started with `stdin` or `tty` (see
    /// [`TaskInput`]): the text, then the keys, then the end of input; and resizes its
    /// terminal. Keys are the bytes a terminal sends for them; on a pipe, `enter` is
    /// a newline and `ctrl-d` ends the input, and keys that only mean something to a
    /// terminal are refused. In a fleet, input to a task running on another node goes
    /// through that node.
    pub async fn send_input(&self, id: TaskId, input: TaskInput) -> Result<InputSent> {
        self.check_started_by_caller(id, "send input to").await?;
        input.check()?;
        let task = self.get(id).await?;
        let interactive = task.spec.stdin || task.spec.tty.is_some();
        if !interactive {
            return Err(conflict(format!(
                "task {id} takes no input: its stdin is /dev/null; start it with --stdin (a pipe) or --tty (a terminal) to send it input"
            )));
        }
        if task.state != TaskState::Running {
            return Err(conflict(format!(
                "task {id} {}; only a running task takes input",
                task.state.in_words()
            )));
        }
        let node = task.node.clone().unwrap_or_default();
        if node != self.inner.node {
            let address = self.node_address(id, &node, "the input of").await?;
            let Some(remote) = &self.inner.config.remote_output else {
                return Err(Error::Elsewhere {
                    what: "the input of",
                    task: id,
                    node,
                    why: format!("is not asked from here; ask it at {address}"),
                });
            };
            return match remote.input(&address, id, &input).await {
                Ok(sent) => Ok(sent),
                Err(crate::RemoteError::Refused(answer)) => Err(Error::Remote(answer)),
                Err(crate::RemoteError::Unreachable(why)) => Err(Error::Elsewhere {
                    what: "the input of",
                    task: id,
                    node,
                    why: format!("does not answer at {address}: {why}"),
                }),
            };
        }
        if let Some(writer) = &input.writer {
            let mut writers = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
            writers.retain(|_, (_, at)| at.elapsed() < WRITER_LEASE);
            match writers.get(&id) {
                Some((other, _)) if other != writer => {
                    return Err(conflict(format!(
                        "task {id} has another terminal attached for writing; watch it read-only until that one detaches"
                    )));
                }
                _ if input.detach => {
                    writers.remove(&id);
                }
                _ => {
                    writers.insert(id, (writer.clone(), std::time::Instant::now()));
                }
            }
        }
        let tty = task.spec.tty.is_some();
        let mut bytes: Vec<u8> = input.text.clone().unwrap_or_default().into_bytes();
        let mut eof = input.eof;
        for key in &input.keys {
            match (tty, key) {
                (true, k) => bytes.extend_from_slice(k.terminal_bytes()),
                (false, Key::Enter) => bytes.push(b'\n'),
                (false, Key::CtrlD) => eof = true,
                (false, Key::Tab) => bytes.push(b'\t'),
                // The others are escape sequences or control bytes that only a
                // terminal's line discipline or a full-screen program reads: written
                // into a pipe they would reach the program as garbage input.
                (false, k) => {
                    let instead = if matches!(k, Key::CtrlC | Key::CtrlZ) {
                        format!("stop it with `meanwhile stop {id}`, or start it with --tty")
                    } else {
                        "on a pipe only enter, tab and ctrl-d mean something; start it with --tty for the others".to_string()
                    };
                    return Err(Error::NotApplicable {
                        field: "keys",
                        message: format!(
                            "{} is a key of a terminal, and task {id} reads a pipe (--stdin); {instead}",
                            k.name()
                        ),
                    });
                }
            }
        }
        if input.resize.is_some() && !tty {
            return Err(Error::NotApplicable {
                field: "resize",
                message: format!("task {id} has no terminal to resize: it reads a pipe (--stdin)"),
            });
        }
        let socket = self.inner.home.io_socket(id, task.attempts);
        let failed = |e: crate::input::InputError| match e {
            crate::input::InputError::Gone => conflict(format!(
                "task {id}'s input is closed: its processes have ended"
            )),
            crate::input::InputError::Refused(why) => conflict(format!("task {id}: {why}")),
            crate::input::InputError::Io(e) => Error::Io {
                what: format!("sending input to task {id}"),
                source: e,
            },
        };
        self.await_io_socket(id, task.attempts, &socket)
            .await
            .map_err(failed)?;
        if !bytes.is_empty() {
            crate::input::request(&socket, crate::interact::OP_WRITE, &bytes)
                .await
                .map_err(failed)?;
        }
        if let Some(size) = input.resize {
            let mut b = size.cols.to_le_bytes().to_vec();
            b.extend_from_slice(&size.rows.to_le_bytes());
            crate::input::request(&socket, crate::interact::OP_RESIZE, &b)
                .await
                .map_err(failed)?;
        }
        if eof {
            crate::input::request(&socket, crate::interact::OP_EOF, b"")
                .await
                .map_err(failed)?;
        }
        Ok(InputSent {
            id,
            bytes: bytes.len() as u64,
            eof,
        })
    }

    /// Waits for the input socket of attempt `attempt` of `id` to be bound: a task
    /// is running from its claim, a moment before its supervisor has bound the
    /// socket. Gives up once the task has left that attempt, or after the time an
    /// answer may take.
    async fn await_io_socket(
        &self,
        id: TaskId,
        attempt: u32,
        socket: &std::path::Path,
    ) -> std::result::Result<(), crate::input::InputError> {
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        while !socket.exists() {
            let still = self
                .get(id)
                .await
                .is_ok_and(|t| t.state == TaskState::Running && t.attempts == attempt);
            if !still || start.elapsed() > crate::input::ANSWER_WITHIN {
                return Err(crate::input::InputError::Gone);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The node keeping the output of `id`, when it is another one.
    async fn output_node(&self, id: TaskId) -> Result<Option<String>> {
        if !self.inner.store.is_shared() {
            return Ok(None);
        }
        let task = self.get(id).await?;
        let node = match task.node {
            Some(n) => Some(n),
            None if task.attempts > 0 => self.attempts(id).await?.pop().map(|a| a.node),
            None => None,
        };
        Ok(node.filter(|n| *n != self.inner.node))
    }

    /// The API address of `node`, another node of the fleet that must be alive.
    async fn node_address(&self, id: TaskId, node: &str, what: &'static str) -> Result<String> {
        let elsewhere = |why: String| Error::Elsewhere {
            what,
            task: id,
            node: node.to_string(),
            why,
        };
        let nodes = self.nodes().await?;
        let Some(info) = nodes.iter().find(|n| n.name == node) else {
            return Err(elsewhere("is gone (it was forgotten)".into()));
        };
        if !info.alive {
            return Err(elsewhere(format!(
                "is gone (its last heartbeat was at {})",
                info.heartbeat_at.rfc3339()
            )));
        }
        match &info.address {
            Some(address) => Ok(address.clone()),
            None => Err(elsewhere(
                "has no API address for other nodes (start it with --listen, or set node_address)"
                    .into(),
            )),
        }
    }

    async fn read_remote(&self, id: TaskId, node: &str, query: OutputQuery) -> Result<OutputChunk> {
        let address = self.node_address(id, node, "the output of").await?;
        let elsewhere = |why: String| Error::Elsewhere {
            what: "the output of",
            task: id,
            node: node.to_string(),
            why,
        };
        let Some(remote) = &self.inner.config.remote_output else {
            return Err(elsewhere(format!(
                "is not asked from here; ask it at {address}"
            )));
        };
        match remote.read(&address, id, &query).await {
            Ok(chunk) => Ok(chunk),
            Err(crate::RemoteError::Refused(answer)) => Err(Error::Remote(answer)),
            Err(crate::RemoteError::Unreachable(why)) => {
                Err(elsewhere(format!("does not answer at {address}: {why}")))
            }
        }
    }

    /// Reads a task's output from this node's own log, never through another node
    /// (what a node asked by another does).
    pub async fn read_output_here(&self, id: TaskId, query: OutputQuery) -> Result<OutputChunk> {
        query.check()?;
        let grep = compile(query.grep.as_deref(), "grep")?;
        let wait_re = match &query.wait {
            Some(WaitFor::Match(re)) => compile(Some(re), "wait")?,
            _ => None,
        };
        let path = self.inner.home.log(id);
        let since = query.since.unwrap_or(0);
        let mut matched = None;
        let mut timed_out = false;
        // Subscribe before reading the state, and take the output watch before
        // measuring the log, so that an end or a write in between still wakes us.
        let mut events = self.subscribe();
        let mut task = self.get(id).await?;
        if let Some(wait) = &query.wait {
            let timeout = query.timeout.unwrap_or(Duration::from_secs(30));
            let deadline = tokio::time::Instant::now() + timeout;
            let mut scanned = since;
            let mut _following = None;
            loop {
                let mut output = self.output_watch(id).await;
                // Woken by the kernel at each write while waiting, not only at the
                // watcher's next regular look.
                _following = self.inner.watcher.follow(id);
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let ended = task.state.is_terminal();
                let met = match wait {
                    WaitFor::Exit => ended,
                    WaitFor::Output => size > since || ended,
                    WaitFor::Match(_) => {
                        if let Some(re) = &wait_re {
                            let p = path.clone();
                            let re2 = re.clone();
                            let mask = output::Mask::of(&task, &self.inner.secrets);
                            let (found, upto) = tokio::task::spawn_blocking(move || {
                                output::find_match(&p, scanned, &re2, ended, &mask)
                            })
                            .await
                            .map_err(|_| Error::ShutDown)?
                            .map_err(Error::io("reading the output log"))?;
                            scanned = upto;
                            matched = found;
                        }
                        matched.is_some() || ended
                    }
                    WaitFor::Listening => !task.listening.is_empty() || ended,
                    WaitFor::Input => task.waiting_for_input || ended,
                };
                if met {
                    break;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    timed_out = true;
                    break;
                }
                // A task already running whose attempt is not registered yet (its
                // start event came before this wait subscribed) sends nothing more
                // until it ends: look again in a moment instead.
                let unregistered = output.is_none() && task.state == TaskState::Running;
                tokio::select! {
                    _ = wait_for_event(&mut events, Some(deadline), |e| e.task_id == Some(id)) => {}
                    _ = async {
                        match output.as_mut() {
                            Some(rx) => { let _ = rx.changed().await; }
                            None if unregistered => tokio::time::sleep(REGISTER_PAUSE).await,
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
                task = self.get(id).await?;
            }
        }
        let reader_query = (since, query.tail, query.max_bytes, query.strip_ansi);
        let mask = output::Mask::of(&task, &self.inner.secrets);
        let slice = tokio::task::spawn_blocking(move || {
            let (since, tail, max_bytes, strip_ansi) = reader_query;
            Reader {
                since,
                tail,
                grep: grep.as_ref(),
                max_bytes,
                strip_ansi,
                mask: &mask,
            }
            .read(&path)
        })
        .await
        .map_err(|_| Error::ShutDown)?
        .map_err(Error::io("reading the output log"))?;
        Ok(OutputChunk {
            id,
            text: String::from_utf8_lossy(&slice.text).into_owned(),
            start: slice.start,
            cursor: slice.cursor,
            total_bytes: slice.total,
            elided_bytes: slice.elided,
            dropped_bytes: slice.dropped,
            skipped_lines: slice.skipped_lines,
            more: slice.more,
            state: task.state,
            exit_code: task.exit_code,
            matched,
            timed_out,
            listening: task.listening,
            waiting_for_input: task.waiting_for_input,
            prompt: task.prompt,
        })
    }

    /// A watch of the log size of a task running on this node.
    async fn output_watch(&self, id: TaskId) -> Option<watch::Receiver<u64>> {
        self.inner.registry().get(id).map(|a| a.output.clone())
    }
}

/// How long a wait on a running task's output pauses before it looks for the
/// task's attempt again, when the attempt was not registered yet.
const REGISTER_PAUSE: Duration = Duration::from_millis(20);

fn compile(re: Option<&str>, field: &'static str) -> Result<Option<Regex>> {
    match re {
        None => Ok(None),
        Some(s) => Regex::new(s).map(Some).map_err(|e| Error::Invalid {
            field,
            message: format!("not a valid regex: {e}"),
        }),
    }
}

/// Waits for an event that satisfies `pred` (or a lagged stream, which may have hidden
/// one); false when the deadline passed first.
async fn wait_for_event(
    rx: &mut broadcast::Receiver<Event>,
    deadline: Option<tokio::time::Instant>,
    pred: impl Fn(&Event) -> bool,
) -> bool {
    let next = async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return true,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, next).await.unwrap_or(false),
        None => next.await,
    }
}

/// How long an attached terminal holds a task's input without a request.
const WRITER_LEASE: Duration = Duration::from_secs(10);
