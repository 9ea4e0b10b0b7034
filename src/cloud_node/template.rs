//! Command templates (`inference: python x.py --params {body}`), lexed once at load.
//!
//! The params never become shell code: `{body}` is replaced by `"$CYBERWAVE_PARAMS"` and
//! `{body_file}` by `"$CYBERWAVE_PARAMS_FILE"`, and the runner puts the params JSON (and the
//! path of a file holding it) in those variables. A double-quoted variable expansion is one
//! word the shell never parses again, whatever the JSON contains. That is only true where the
//! placeholder stands in plain, unquoted shell text, so the lexer below follows POSIX quoting,
//! substitutions, comments and here-documents, and refuses a template that puts a placeholder
//! anywhere else (inside quotes, `$(…)`, backquotes, `${…}`, a here-document, a redirection
//! target, the command position, or the code argument of `eval` / `sh -c` / `python -c`).

use std::fmt;

/// Environment variable holding the params JSON for `{body}`.
pub const PARAMS_VAR: &str = "CYBERWAVE_PARAMS";
/// Environment variable holding the path of the params file for `{body_file}`.
pub const PARAMS_FILE_VAR: &str = "CYBERWAVE_PARAMS_FILE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Body,
    BodyFile,
}

impl Placeholder {
    fn token(self) -> &'static str {
        match self {
            Placeholder::Body => "{body}",
            Placeholder::BodyFile => "{body_file}",
        }
    }
    fn expansion(self) -> &'static str {
        match self {
            Placeholder::Body => "\"$CYBERWAVE_PARAMS\"",
            Placeholder::BodyFile => "\"$CYBERWAVE_PARAMS_FILE\"",
        }
    }
}

/// A template ready to run: the script for `sh -c` and which placeholders it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub script: String,
    pub uses_body: bool,
    pub uses_body_file: bool,
}

/// Why a template was refused, and where (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub placeholder: &'static str,
    pub line: usize,
    pub column: usize,
    pub reason: &'static str,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {} is {}; it must stand in plain unquoted shell text, e.g. `python x.py --params {}` (the params reach the command as one argument, never as code)",
            self.placeholder, self.line, self.column, self.reason, self.placeholder
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Single,
    Double,
    DollarSingle,
    Backtick,
    Subst,
    Param,
    Arith,
    /// `$[…]`, bash's old arithmetic form.
    BracketArith,
}

impl Ctx {
    fn reason(self) -> &'static str {
        match self {
            Ctx::Single => "inside single quotes",
            Ctx::Double => "inside double quotes",
            Ctx::DollarSingle => "inside $'…' quotes",
            Ctx::Backtick => "inside backquotes",
            Ctx::Subst => "inside a $(…) command substitution",
            Ctx::Param => "inside a ${…} parameter expansion",
            Ctx::Arith | Ctx::BracketArith => "inside an arithmetic expansion",
        }
    }
}

/// Shells and interpreters whose `-c` / `-e` argument is code.
const CODE_RUNNERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox", "python", "python2", "python3",
    "perl", "ruby", "node", "nodejs", "php", "lua", "Rscript", "julia",
];

struct Lexer<'a> {
    chars: &'a [char],
    i: usize,
    line: usize,
    col: usize,
    out: String,
    stack: Vec<Ctx>,
    /// Words of the current simple command (leading assignments left out).
    words: Vec<String>,
    word: String,
    in_word: bool,
    /// The word being read is the target of `<`, `>` or `<<`.
    redirect: bool,
    /// `Some(strip_tabs)` when the word being read is a here-document delimiter.
    heredoc_word: Option<bool>,
    pending_heredocs: Vec<(String, bool)>,
    uses_body: bool,
    uses_body_file: bool,
}

/// Lexes `src` and returns the script to run, or where a placeholder may not stand.
pub fn compile(src: &str) -> Result<Template, TemplateError> {
    let chars: Vec<char> = src.chars().collect();
    let mut lx = Lexer {
        chars: &chars,
        i: 0,
        line: 1,
        col: 1,
        out: String::with_capacity(src.len() + 32),
        stack: Vec::new(),
        words: Vec::new(),
        word: String::new(),
        in_word: false,
        redirect: false,
        heredoc_word: None,
        pending_heredocs: Vec::new(),
        uses_body: false,
        uses_body_file: false,
    };
    lx.run()?;
    Ok(Template {
        source: src.to_string(),
        script: lx.out,
        uses_body: lx.uses_body,
        uses_body_file: lx.uses_body_file,
    })
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    /// Copies one character to the output and moves past it.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.out.push(c);
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        if self.in_word && !matches!(c, '\'' | '"' | '\\') {
            self.word.push(c);
        }
        Some(c)
    }

    fn placeholder_here(&self) -> Option<Placeholder> {
        if self.peek(0) != Some('{') {
            return None;
        }
        [Placeholder::Body, Placeholder::BodyFile]
            .into_iter()
            .find(|p| {
                let t = p.token();
                let n = t.len(); // ASCII: bytes = chars
                self.chars
                    .get(self.i..self.i + n)
                    .is_some_and(|w| w.iter().copied().eq(t.chars()))
            })
    }

    fn refuse(&self, p: Placeholder, reason: &'static str) -> TemplateError {
        TemplateError {
            placeholder: p.token(),
            line: self.line,
            column: self.col,
            reason,
        }
    }

    fn run(&mut self) -> Result<(), TemplateError> {
        while let Some(c) = self.peek(0) {
            if let Some(p) = self.placeholder_here() {
                self.placeholder(p)?;
                continue;
            }
            match self.stack.last().copied() {
                None => self.top(c)?,
                Some(ctx) => self.nested(ctx, c),
            }
        }
        Ok(())
    }

    fn placeholder(&mut self, p: Placeholder) -> Result<(), TemplateError> {
        if let Some(ctx) = self.stack.last() {
            return Err(self.refuse(p, ctx.reason()));
        }
        if self.redirect {
            return Err(self.refuse(p, "a redirection target"));
        }
        // `NAME={body} cmd …`: a variable for the command, not the command itself.
        let leading_assignment = self.words.is_empty() && is_assignment_prefix(&self.word);
        if self.words.is_empty() && !leading_assignment {
            return Err(self.refuse(p, "the command itself"));
        }
        if runs_as_code(&self.words) {
            return Err(self.refuse(p, "the code argument of an interpreter or `eval`"));
        }
        match p {
            Placeholder::Body => self.uses_body = true,
            Placeholder::BodyFile => self.uses_body_file = true,
        }
        self.out.push_str(p.expansion());
        self.word.push_str(p.token());
        self.in_word = true;
        let n = p.token().chars().count();
        self.i += n;
        self.col += n;
        Ok(())
    }

    /// Ends the current word: it joins the command's words, or becomes a redirect target or a
    /// here-document delimiter.
    fn end_word(&mut self) {
        if !self.in_word {
            return;
        }
        let w = std::mem::take(&mut self.word);
        self.in_word = false;
        if let Some(strip) = self.heredoc_word.take() {
            self.pending_heredocs.push((w, strip));
        } else {
            let leading_assignment = self.words.is_empty() && is_assignment_prefix(&w);
            if !self.redirect && !leading_assignment {
                self.words.push(w);
            }
        }
        self.redirect = false;
    }

    fn end_command(&mut self) {
        self.end_word();
        self.words.clear();
        self.redirect = false;
    }

    fn top(&mut self, c: char) -> Result<(), TemplateError> {
        match c {
            ' ' | '\t' => {
                self.end_word();
                self.bump();
            }
            '\n' => {
                self.end_command();
                self.bump();
                self.heredoc_bodies()?;
            }
            ';' | '&' | '|' | '(' | ')' => {
                self.end_command();
                self.bump();
            }
            '<' | '>' => {
                self.end_word();
                self.bump();
                if c == '<' && self.peek(0) == Some('<') && self.peek(1) != Some('<') {
                    self.bump();
                    let strip = self.peek(0) == Some('-');
                    if strip {
                        self.bump();
                    }
                    self.heredoc_word = Some(strip);
                } else {
                    while matches!(self.peek(0), Some('<' | '>' | '&' | '|')) {
                        self.bump();
                    }
                }
                self.redirect = true;
            }
            '#' if !self.in_word => {
                while let Some(n) = self.peek(0) {
                    if n == '\n' {
                        break;
                    }
                    self.bump();
                }
            }
            _ => {
                self.in_word = true;
                self.opener(c);
            }
        }
        Ok(())
    }

    /// Quotes, escapes and expansions that open a context (shared by top level and nests).
    fn opener(&mut self, c: char) {
        match c {
            '\\' => {
                self.bump();
                self.bump();
            }
            '\'' => {
                self.bump();
                self.stack.push(Ctx::Single);
            }
            '"' => {
                self.bump();
                self.stack.push(Ctx::Double);
            }
            '`' => {
                self.bump();
                self.stack.push(Ctx::Backtick);
            }
            '$' => {
                self.bump();
                match (self.peek(0), self.peek(1)) {
                    (Some('('), Some('(')) => {
                        self.bump();
                        self.bump();
                        self.stack.push(Ctx::Arith);
                    }
                    (Some('('), _) => {
                        self.bump();
                        self.stack.push(Ctx::Subst);
                    }
                    (Some('{'), _) => {
                        self.bump();
                        self.stack.push(Ctx::Param);
                    }
                    (Some('['), _) => {
                        self.bump();
                        self.stack.push(Ctx::BracketArith);
                    }
                    (Some('\''), _) => {
                        self.bump();
                        self.stack.push(Ctx::DollarSingle);
                    }
                    _ => {}
                }
            }
            _ => {
                self.bump();
            }
        }
    }

    fn nested(&mut self, ctx: Ctx, c: char) {
        match (ctx, c) {
            (Ctx::Single, '\'') | (Ctx::Double, '"') | (Ctx::Backtick, '`') => {
                self.bump();
                self.stack.pop();
            }
            (Ctx::DollarSingle, '\'')
            | (Ctx::Subst, ')')
            | (Ctx::Param, '}')
            | (Ctx::BracketArith, ']') => {
                self.bump();
                self.stack.pop();
            }
            (Ctx::Arith, ')') if self.peek(1) == Some(')') => {
                self.bump();
                self.bump();
                self.stack.pop();
            }
            (Ctx::Single, _) => {
                self.bump();
            }
            (Ctx::DollarSingle | Ctx::Backtick, '\\') => {
                self.bump();
                self.bump();
            }
            (Ctx::DollarSingle | Ctx::Backtick, _) => {
                self.bump();
            }
            (Ctx::Double, '\'') => {
                self.bump();
            }
            (Ctx::Subst, '#') if matches!(self.out.chars().last(), Some(' ' | '\t' | '(')) => {
                while let Some(n) = self.peek(0) {
                    if n == '\n' {
                        break;
                    }
                    self.bump();
                }
            }
            _ => self.opener(c),
        }
    }

    /// After a newline at top level: the bodies of the here-documents opened on that line.
    /// A placeholder in one is refused; the text is copied as is.
    fn heredoc_bodies(&mut self) -> Result<(), TemplateError> {
        for (delim, strip) in std::mem::take(&mut self.pending_heredocs) {
            loop {
                if self.peek(0).is_none() {
                    return Ok(());
                }
                let start = self.i;
                let mut end = start;
                while end < self.chars.len() && self.chars[end] != '\n' {
                    end += 1;
                }
                let line: String = self.chars[start..end].iter().collect();
                let body = if strip {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                let done = body == delim;
                while self.i < end {
                    if let Some(p) = self.placeholder_here().filter(|_| !done) {
                        return Err(self.refuse(p, "inside a here-document"));
                    }
                    self.bump();
                }
                self.in_word = false;
                self.word.clear();
                self.bump(); // the newline, if any
                if done {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// `NAME=` (a variable assignment before the command word).
fn is_assignment_prefix(w: &str) -> bool {
    let Some((name, _)) = w.split_once('=') else {
        return false;
    };
    let mut cs = name.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Commands whose every argument may be run as code: by the shell (`eval`, `trap`, `.`), by
/// bash's arithmetic evaluation, which runs `$(…)` found in array subscripts (`let`, `[[`,
/// `declare`, `typeset`), or by a remote shell (`ssh`).
const CODE_COMMANDS: &[&str] = &[
    "eval", "source", ".", "trap", "let", "[[", "declare", "typeset", "ssh",
];

/// True when the next argument of this command would be run as code: any argument of a
/// [`CODE_COMMANDS`] command, or the argument after `-c` / `-e` of an interpreter anywhere in
/// the command (`sh -c`, `timeout 5 bash -lc`, `python -u -c`, `xargs perl -e`), with no
/// script file between the interpreter and that option.
fn runs_as_code(words: &[String]) -> bool {
    let base = |w: &String| w.rsplit('/').next().unwrap_or(w).to_string();
    if words
        .iter()
        .any(|w| CODE_COMMANDS.contains(&base(w).as_str()))
    {
        return true;
    }
    let is_runner = |w: &String| {
        let cmd = base(w);
        CODE_RUNNERS.iter().any(|r| {
            cmd == *r
                || cmd
                    .strip_prefix(r)
                    .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
    };
    let short_opts = |w: &String| {
        w.len() > 1 && w.starts_with('-') && w[1..].chars().all(|c| c.is_ascii_alphanumeric())
    };
    words.iter().enumerate().any(|(i, w)| {
        let args = &words[i + 1..];
        is_runner(w)
            && args.iter().all(|a| a.starts_with('-'))
            && args
                .last()
                .is_some_and(|a| short_opts(a) && (a.ends_with('c') || a.ends_with('e')))
    })
}

#[cfg(test)]
mod tests;
