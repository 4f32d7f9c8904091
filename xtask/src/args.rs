//! The one command-line parser of every `cargo xtask` command: a pull parser over the
//! arguments, so that each command keeps its options as one `match`.
//!
//! Rules, the same everywhere: `--opt value` and `--opt=value` are one thing; `-h`/`--help`
//! prints the command's usage and exits 0; an unknown option, a missing value, a value given to
//! an option that takes none (`--flag=x`) and a stray positional argument are errors that print
//! the usage first; `--` ends the options (everything after it is positional).
//!
//! ```ignore
//! let mut p = Parser::new(USAGE, args);
//! while let Some(arg) = p.next()? {
//!     match arg {
//!         Arg::Long("kernel") => kernel = p.value()?,
//!         Arg::Long("smoke") => smoke = true,
//!         Arg::Value(target) => targets.push(target.to_owned()),
//!         other => return Err(p.unexpected(other)),
//!     }
//! }
//! ```

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, anyhow};

/// One argument as the parser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// `--name` or `--name=value` (the name without dashes); take the value with
    /// [`Parser::value`].
    Long(&'a str),
    /// `-c`: a short option (the character after the dash).
    Short(char),
    /// A positional argument (anything after `--` included).
    Value(&'a str),
}

impl fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Long(name) => write!(f, "--{name}"),
            Arg::Short(c) => write!(f, "-{c}"),
            Arg::Value(v) => f.write_str(v),
        }
    }
}

/// The parser: [`Parser::next`] until `None`, [`Parser::value`] after an option that takes one.
#[derive(Debug)]
pub(crate) struct Parser<'a> {
    usage: &'a str,
    args: &'a [String],
    /// Index of the next argument.
    pos: usize,
    /// The option last returned as written (`--name`, `-c`), and its `=value` if not taken yet.
    last: Option<(&'a str, Option<&'a str>)>,
    /// After `--`: everything is positional.
    positional_only: bool,
}

impl<'a> Parser<'a> {
    /// A parser over `args` (the command's arguments, without the command itself); `usage` is
    /// printed for `--help` and with every error.
    pub(crate) fn new(usage: &'a str, args: &'a [String]) -> Self {
        Parser {
            usage,
            args,
            pos: 0,
            last: None,
            positional_only: false,
        }
    }

    /// The next argument, `None` at the end. `-h`/`--help` print the usage and exit 0.
    ///
    /// # Errors
    ///
    /// The previous option was given an `=value` it did not take.
    pub(crate) fn next(&mut self) -> Result<Option<Arg<'a>>> {
        if let Some((name, Some(_))) = self.last.take() {
            return Err(self.error(format!("{name} takes no value")));
        }
        let Some(arg) = self.args.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        if self.positional_only {
            return Ok(Some(Arg::Value(arg)));
        }
        if arg == "--" {
            self.positional_only = true;
            return self.next();
        }
        if arg == "-h" || arg == "--help" {
            print!("{}", self.usage);
            std::process::exit(0);
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            self.last = Some((&arg[..name.len() + 2], inline));
            return Ok(Some(Arg::Long(name)));
        }
        let mut chars = arg.chars();
        if let (Some('-'), Some(c), None) = (chars.next(), chars.next(), chars.next()) {
            self.last = Some((arg, None));
            return Ok(Some(Arg::Short(c)));
        }
        Ok(Some(Arg::Value(arg)))
    }

    /// Whether `--` has been seen (every argument after it is an [`Arg::Value`]).
    pub(crate) fn ended_options(&self) -> bool {
        self.positional_only
    }

    /// The value of the option just returned: its `=value`, else the next argument.
    ///
    /// # Errors
    ///
    /// There is no value.
    pub(crate) fn value(&mut self) -> Result<&'a str> {
        let name = match self.last.as_mut() {
            Some((_, inline @ Some(_))) => return Ok(inline.take().unwrap_or_default()),
            Some((name, None)) => *name,
            None => "a positional argument",
        };
        let Some(value) = self.args.get(self.pos) else {
            return Err(self.error(format!("{name} needs a value")));
        };
        self.pos += 1;
        Ok(value)
    }

    /// [`Parser::value`], as an owned string.
    ///
    /// # Errors
    ///
    /// As for [`Parser::value`].
    pub(crate) fn string(&mut self) -> Result<String> {
        self.value().map(str::to_owned)
    }

    /// [`Parser::value`] parsed as a `T`.
    ///
    /// # Errors
    ///
    /// No value, or one that does not parse.
    pub(crate) fn parse<T: FromStr>(&mut self) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        let name = self.last.map(|(name, _)| name).unwrap_or_default();
        let value = self.value()?;
        value
            .parse()
            .map_err(|e| self.error(format!("{name} {value}: {e}")))
    }

    /// The error for an argument the command does not take (printing the usage).
    pub(crate) fn unexpected(&self, arg: Arg<'_>) -> anyhow::Error {
        match arg {
            Arg::Value(v) => self.error(format!("unexpected argument `{v}`")),
            other => self.error(format!("unknown option `{other}`")),
        }
    }

    /// An error about the command line: prints the usage, returns `message`.
    pub(crate) fn error(&self, message: String) -> anyhow::Error {
        eprint!("{}", self.usage);
        anyhow!(message)
    }
}

/// Parses a command that takes no options (only `--help`).
///
/// # Errors
///
/// Any argument.
pub(crate) fn none(usage: &str, args: &[String]) -> Result<()> {
    let mut p = Parser::new(usage, args);
    if let Some(arg) = p.next()? {
        return Err(p.unexpected(arg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|&s| s.to_owned()).collect()
    }

    /// What [`parse`] found: `--kernel`/`-k`, `--smoke`, positionals, `--n`.
    type Parsed = (Option<String>, bool, Vec<String>, Option<u32>);

    /// Parses `--kernel K`, `--smoke`, `-k K`, `--n N` and positionals, the way commands do.
    fn parse(args: &[&str]) -> Result<Parsed> {
        let args = strings(args);
        let mut p = Parser::new("usage\n", &args);
        let (mut kernel, mut smoke, mut rest, mut n) = (None, false, Vec::new(), None);
        while let Some(arg) = p.next()? {
            match arg {
                Arg::Long("kernel") | Arg::Short('k') => kernel = Some(p.string()?),
                Arg::Long("smoke") => smoke = true,
                Arg::Long("n") => n = Some(p.parse()?),
                Arg::Value(v) => rest.push(v.to_owned()),
                other => return Err(p.unexpected(other)),
            }
        }
        Ok((kernel, smoke, rest, n))
    }

    #[test]
    fn space_and_equals_forms_are_the_same() {
        let a = parse(&["--kernel", "7.3", "--smoke", "x"]).unwrap();
        let b = parse(&["x", "--kernel=7.3", "--smoke"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0.as_deref(), Some("7.3"));
        assert!(a.1);
        assert_eq!(a.2, ["x"]);
        assert_eq!(parse(&["-k", "6.1"]).unwrap().0.as_deref(), Some("6.1"));
        // An empty inline value is a value.
        assert_eq!(parse(&["--kernel="]).unwrap().0.as_deref(), Some(""));
    }

    #[test]
    fn errors_name_the_option() {
        let e = parse(&["--bogus"]).unwrap_err().to_string();
        assert!(e.contains("unknown option `--bogus`"), "{e}");
        let e = parse(&["-z"]).unwrap_err().to_string();
        assert!(e.contains("unknown option `-z`"), "{e}");
        let e = parse(&["--kernel"]).unwrap_err().to_string();
        assert!(e.contains("--kernel needs a value"), "{e}");
        let e = parse(&["--smoke=yes"]).unwrap_err().to_string();
        assert!(e.contains("--smoke takes no value"), "{e}");
        let e = parse(&["--n", "x"]).unwrap_err().to_string();
        assert!(e.contains("--n x"), "{e}");
        assert_eq!(parse(&["--n=3"]).unwrap().3, Some(3));
    }

    #[test]
    fn double_dash_ends_the_options() {
        let (_, smoke, rest, _) = parse(&["--", "--smoke", "-k"]).unwrap();
        assert!(!smoke);
        assert_eq!(rest, ["--smoke", "-k"]);
    }

    #[test]
    fn a_command_without_options_takes_no_argument() {
        assert!(none("u\n", &[]).is_ok());
        assert!(none("u\n", &strings(&["x"])).is_err());
    }
}
