//! One line for an error and its causes, shared by every crate's logs and reports.

/// Renders an error and its causes on one line, `error: cause: cause`, leaving out a cause
/// whose text the line already holds (drivers often repeat their source's message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner detail")]
    struct Repeats(#[source] Inner);

    #[test]
    fn causes_follow_once() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner detail");
        assert_eq!(error_chain(&Repeats(Inner)), "outer: inner detail");
    }
}
