//! CEL conditions (`when`, `exit_when`): compiled at load, checked against
//! the variables their context provides.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use std::collections::HashSet;

/// Variables a rule's `when` sees.
pub const RULE_VARIABLES: &[&str] = &["event", "payload", "resource", "resource_id"];
/// Variables an automation's `when` sees.
pub const AUTOMATION_VARIABLES: &[&str] = &["contact", "changes", "event", "trigger"];
/// Variables a sequence's `exit_when` sees.
pub const SEQUENCE_VARIABLES: &[&str] = &["contact"];

/// Compiles `source`; the error names the position inside the expression,
/// or the unknown variables and the ones that exist.
pub fn compile(source: &str, variables: &[&str]) -> Result<cel::Program, String> {
    let program = cel::Program::compile(source).map_err(|errors| {
        let first = errors.errors.first();
        match first {
            Some(e) => format!(
                "invalid CEL `{source}` at {}:{}: {}",
                e.pos.0,
                e.pos.1 + 1,
                shorten(&e.msg)
            ),
            None => format!("invalid CEL `{source}`"),
        }
    })?;
    let mut bound = HashSet::new();
    binders(program.expression(), &mut bound);
    let references = program.references();
    let mut unknown: Vec<&str> = references
        .variables()
        .into_iter()
        .filter(|v| !variables.contains(v) && !bound.contains(*v))
        .collect();
    unknown.sort_unstable();
    if let Some(first) = unknown.first() {
        return Err(format!(
            "CEL `{source}` uses unknown variable `{first}`, {}",
            super::diagnostic::expected_one_of(first, variables.iter().copied())
        ));
    }
    Ok(program)
}

/// ANTLR's "expecting {…}" lists every token; keep the sentence before it.
fn shorten(msg: &str) -> &str {
    msg.split(" expecting {").next().unwrap_or(msg)
}

/// Names bound by comprehensions (`t` in `tags.exists(t, t == "x")`).
fn binders<'a>(e: &'a IdedExpr, out: &mut HashSet<&'a str>) {
    match &e.expr {
        Expr::Comprehension(c) => {
            out.insert(&c.iter_var);
            if let Some(v) = &c.iter_var2 {
                out.insert(v);
            }
            for child in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                binders(child, out);
            }
        }
        Expr::Call(call) => {
            call.target.iter().for_each(|t| binders(t, out));
            call.args.iter().for_each(|a| binders(a, out));
        }
        Expr::List(list) => list.elements.iter().for_each(|x| binders(x, out)),
        Expr::Select(s) => binders(&s.operand, out),
        Expr::Map(m) => m.entries.iter().for_each(|x| entry(&x.expr, out)),
        Expr::Struct(s) => s.entries.iter().for_each(|x| entry(&x.expr, out)),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn entry<'a>(e: &'a EntryExpr, out: &mut HashSet<&'a str>) {
    match e {
        EntryExpr::StructField(f) => binders(&f.value, out),
        EntryExpr::MapEntry(m) => {
            binders(&m.key, out);
            binders(&m.value, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_variables_and_comprehension_binders() {
        assert!(compile("payload.amount > 0 && event == 'x'", RULE_VARIABLES).is_ok());
        assert!(compile(r#"contact.tags.exists(t, t == "activated")"#, SEQUENCE_VARIABLES).is_ok());
    }

    #[test]
    fn names_unknown_variables_and_syntax_positions() {
        let err = compile("paylod.amount > 0", RULE_VARIABLES).unwrap_err();
        assert!(err.contains("unknown variable `paylod`"), "{err}");
        assert!(err.contains("did you mean `payload`?"), "{err}");
        let err = compile("payload.a >", RULE_VARIABLES).unwrap_err();
        assert!(err.starts_with("invalid CEL `payload.a >` at 1:"), "{err}");
        assert!(!err.contains("expecting {"), "{err}");
    }
}
