//! Provider adapters against local fake providers (wiremock): every request
//! is matched exactly (method, path, query, headers, JSON body) and anything
//! else fails the test; bodies are also checked against the providers' own
//! OpenAPI specs where we have them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod fake;
mod spec;

mod end_to_end;

mod activecampaign;
mod aweber;
mod budget;
mod customer_io;
mod discord;
mod hubspot;
mod hubspot_properties;
mod intercom;
mod mailchimp;
mod mailerlite;
mod resend;
mod salesforce;
mod sendgrid;
mod slack;
mod zoom;
