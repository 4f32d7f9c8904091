//! Crate tests: the dispatcher over every opcode, bad input, and negotiation properties
//! against a model of the kernel.

mod dispatch;
mod forwarding;
mod framing;
mod kernel_model;
mod negotiation_props;
