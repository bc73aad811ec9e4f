//! The integration catalog: for each integration, its actions, the rule
//! metadata each action needs and where live choices come from.
//!
//! It is the one source of truth for actions: the JSON Schema's
//! `metadata.action` enum, `meshes validate` and `GET /api/v1/integrations`
//! all read it. Auth fields are read from the connection types' own schema
//! ([`auth_fields`]), so they cannot drift from what the config accepts.

use schemars::JsonSchema;
use serde::Serialize;

/// One integration (`type:` value of a connection).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Integration {
    /// The `type:` value.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Display name.
    pub name: &'static str,
    /// How it authenticates, in words.
    pub auth: &'static str,
    /// What rules can ask it to do.
    pub actions: &'static [Action],
}

/// One action (`metadata.action`).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Action {
    /// The `metadata.action` value.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Metadata fields it reads besides `action`.
    pub metadata: &'static [Field],
    /// What `id` is chosen from in the account (`GET /connections/{id}/actions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_source: Option<&'static str>,
}

/// A metadata field an action reads.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Field {
    /// Field name inside `metadata`.
    pub name: &'static str,
    /// When it must be present.
    pub requirement: Requirement,
    /// What it holds.
    pub description: &'static str,
}

/// When a metadata field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Always.
    Required,
    /// Never.
    Optional,
    /// When the connection uses a bot token rather than a webhook URL.
    RequiredInBotMode,
}

const fn req(name: &'static str, description: &'static str) -> Field {
    Field { name, requirement: Requirement::Required, description }
}

const fn opt(name: &'static str, description: &'static str) -> Field {
    Field { name, requirement: Requirement::Optional, description }
}

const fn act(
    name: &'static str,
    description: &'static str,
    metadata: &'static [Field],
    data_source: Option<&'static str>,
) -> Action {
    Action { name, description, metadata, data_source }
}

const LIST_ID: Field = req("id", "List id");
const TAG_ID: Field = req("id", "Tag id");
const CHANNEL: Field = Field {
    name: "id",
    requirement: Requirement::RequiredInBotMode,
    description: "Channel id (bot token mode)",
};
const TEMPLATE_TEXT: Field = opt("template", "Message text with `{{payload.field}}` placeholders");

/// Every integration, sorted by `type`.
pub const INTEGRATIONS: &[Integration] = &[
    Integration {
        kind: "activecampaign",
        name: "ActiveCampaign",
        auth: "API URL and API key",
        actions: &[
            act("add_to_list", "Subscribe the contact to a list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Unsubscribe the contact from a list",
                &[LIST_ID],
                Some("lists"),
            ),
            act("add_tag", "Add a tag to the contact", &[TAG_ID], Some("tags")),
            act("remove_tag", "Remove a tag from the contact", &[TAG_ID], Some("tags")),
            act("sync_contact", "Create or update the contact", &[], None),
        ],
    },
    Integration {
        kind: "aweber",
        name: "AWeber",
        auth: "OAuth 2 (client id, client secret, refresh token)",
        actions: &[
            act("add_to_list", "Subscribe the contact to a list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Unsubscribe the contact from a list",
                &[LIST_ID],
                Some("lists"),
            ),
        ],
    },
    Integration {
        kind: "customer_io",
        name: "Customer.io",
        auth: "Track API site id and key (region us or eu)",
        actions: &[
            act(
                "track_event",
                "Identify the person, then track the event",
                &[opt(
                    "event_name_override",
                    "Event name to send instead of the meshes event type",
                )],
                None,
            ),
            act(
                "add_to_segment",
                "Add the person to a manual segment",
                &[req("id", "Manual segment id")],
                Some("segments"),
            ),
            act(
                "remove_from_segment",
                "Remove the person from a manual segment",
                &[req("id", "Manual segment id")],
                Some("segments"),
            ),
        ],
    },
    Integration {
        kind: "discord",
        name: "Discord",
        auth: "Channel webhook URL, or bot token",
        actions: &[act(
            "send_message",
            "Post a message",
            &[CHANNEL, opt("title", "Embed title"), TEMPLATE_TEXT],
            Some("channels"),
        )],
    },
    Integration {
        kind: "hubspot",
        name: "HubSpot",
        auth: "Private app access token, or OAuth 2 (client id, client secret, refresh token)",
        actions: &[
            act("add_to_list", "Add the contact to a static list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Remove the contact from a static list",
                &[LIST_ID],
                Some("lists"),
            ),
            act(
                "update_property",
                "Set a contact property",
                &[
                    req("id", "Property name"),
                    req("value", "Property value (an option for enumerations)"),
                ],
                Some("properties"),
            ),
        ],
    },
    Integration {
        kind: "intercom",
        name: "Intercom",
        auth: "Access token (region us, eu or au)",
        actions: &[
            act("add_tag", "Tag the contact", &[TAG_ID], Some("tags")),
            act("remove_tag", "Untag the contact", &[TAG_ID], Some("tags")),
        ],
    },
    Integration {
        kind: "log",
        name: "Log",
        auth: "None",
        actions: &[act("log", "Print the delivery to stdout", &[], None)],
    },
    Integration {
        kind: "mailchimp",
        name: "Mailchimp",
        auth: "API key (data center from its suffix)",
        actions: &[
            act(
                "add_to_list",
                "Subscribe the contact to an audience",
                &[req("id", "Audience id")],
                Some("lists"),
            ),
            act(
                "remove_from_list",
                "Archive the contact in an audience",
                &[req("id", "Audience id")],
                Some("lists"),
            ),
        ],
    },
    Integration {
        kind: "mailerlite",
        name: "MailerLite",
        auth: "API token",
        actions: &[
            act(
                "add_to_group",
                "Add the subscriber to a group",
                &[req("id", "Group id")],
                Some("groups"),
            ),
            act(
                "remove_from_group",
                "Remove the subscriber from a group",
                &[req("id", "Group id")],
                Some("groups"),
            ),
        ],
    },
    Integration {
        kind: "resend",
        name: "Resend",
        auth: "API key",
        actions: &[
            act(
                "add_to_segment",
                "Add the contact to a segment",
                &[req("id", "Segment id")],
                Some("segments"),
            ),
            act(
                "remove_from_segment",
                "Remove the contact from a segment",
                &[req("id", "Segment id")],
                Some("segments"),
            ),
            act(
                "send_email_template",
                "Send a published template to the contact",
                &[
                    req("id", "Template id or alias"),
                    opt("subject", "Subject, overriding the template's"),
                    opt("from", "Sender, overriding the template's"),
                ],
                Some("templates"),
            ),
        ],
    },
    Integration {
        kind: "salesforce",
        name: "Salesforce",
        auth: "OAuth 2 (client id, client secret, refresh token; instance URL)",
        actions: &[
            act(
                "add_to_campaign",
                "Add the contact or lead to a campaign",
                &[req("id", "Campaign id")],
                Some("campaigns"),
            ),
            act(
                "remove_from_campaign",
                "Remove the contact or lead from a campaign",
                &[req("id", "Campaign id")],
                Some("campaigns"),
            ),
            act(
                "update_property",
                "Set a field on the contact or lead",
                &[req("id", "Field API name"), req("value", "Field value")],
                Some("properties"),
            ),
        ],
    },
    Integration {
        kind: "sendgrid",
        name: "SendGrid",
        auth: "API key",
        actions: &[
            act(
                "add_to_list",
                "Upsert the contact into a marketing list",
                &[LIST_ID],
                Some("lists"),
            ),
            act(
                "send_email_template",
                "Send a dynamic template to the contact",
                &[
                    req("id", "Dynamic template id"),
                    req("from", "Sender address"),
                    opt("subject", "Subject"),
                ],
                Some("templates"),
            ),
            act(
                "send_email",
                "Send a plain email to the contact",
                &[
                    req("subject", "Subject"),
                    req("from", "Sender address"),
                    req("body", "Body text with `{{payload.field}}` placeholders"),
                ],
                None,
            ),
        ],
    },
    Integration {
        kind: "slack",
        name: "Slack",
        auth: "Incoming webhook URL, or bot token",
        actions: &[act(
            "send_message",
            "Post a message",
            &[CHANNEL, TEMPLATE_TEXT],
            Some("channels"),
        )],
    },
    Integration {
        kind: "webhook",
        name: "Webhook",
        auth: "None (optional basic, bearer or header auth; Standard Webhooks signing)",
        actions: &[act("send_webhook", "POST the event to the URL", &[], None)],
    },
    Integration {
        kind: "zoom",
        name: "Zoom",
        auth: "Server-to-server OAuth (account id, client id, client secret)",
        actions: &[
            act(
                "add_meeting_registrant",
                "Register the contact for a meeting",
                &[req("id", "Meeting id")],
                Some("meetings"),
            ),
            act(
                "add_webinar_registrant",
                "Register the contact for a webinar",
                &[req("id", "Webinar id")],
                Some("webinars"),
            ),
        ],
    },
];

/// Looks an integration up by its `type:` value.
pub fn integration(kind: &str) -> Option<&'static Integration> {
    INTEGRATIONS.iter().find(|i| i.kind == kind)
}

impl Integration {
    /// Looks one of its actions up by name.
    pub fn action(&self, name: &str) -> Option<&'static Action> {
        self.actions.iter().find(|a| a.name == name)
    }
    /// Its action names, in catalog order.
    pub fn action_names(&self) -> impl Iterator<Item = &'static str> {
        self.actions.iter().map(|a| a.name)
    }
}

/// Every action name of every integration, sorted and deduplicated: the
/// schema's enum for `metadata.action`.
pub fn all_action_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = INTEGRATIONS.iter().flat_map(|i| i.action_names()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Metadata field names any action reads (for unused-metadata warnings).
pub const METADATA_FIELDS: &[&str] =
    &["id", "value", "subject", "from", "body", "template", "title", "event_name_override"];

/// One credential or setting of an integration's connection, read from the
/// connection type's JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AuthField {
    /// Field name in the connection config.
    pub name: String,
    /// Must be present.
    pub required: bool,
    /// A credential (never returned by the API; give it as `${VAR}`).
    pub secret: bool,
    /// The field's documentation.
    pub description: String,
}

/// The config fields of integration `kind`, from the generated schema.
pub fn auth_fields(kind: &str) -> Vec<AuthField> {
    let schema = crate::config::schema::root_schema();
    let Some(variant) = crate::config::schema::connection_variant(schema, kind) else {
        return Vec::new();
    };
    let required: Vec<&str> = variant["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = variant["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "type" | "delivery"))
        .map(|(name, prop)| AuthField {
            name: name.clone(),
            required: required.contains(&name.as_str()),
            secret: prop.to_string().contains("#/$defs/Secret"),
            description: prop["description"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}
