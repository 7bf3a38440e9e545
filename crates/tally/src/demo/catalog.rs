//! The fixed parts of the demo business: its price list, services, acquisition channels
//! and the LLM models its customers call.

use tally_core::model::{Interval, Plan, Service};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Starter,
    Professional,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Starter, Tier::Professional, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Starter => "starter",
            Tier::Professional => "professional",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn up(self) -> Option<Tier> {
        match self {
            Tier::Starter => Some(Tier::Professional),
            Tier::Professional => Some(Tier::Enterprise),
            Tier::Enterprise => None,
        }
    }

    pub fn down(self) -> Option<Tier> {
        match self {
            Tier::Starter => None,
            Tier::Professional => Some(Tier::Starter),
            Tier::Enterprise => Some(Tier::Professional),
        }
    }
}

pub struct PlanDef {
    pub id: &'static str,
    pub name: &'static str,
    pub tier: Tier,
    pub interval: Interval,
    /// USD cents per interval.
    pub amount: i64,
}

/// Annual plans cost ten months; the quarterly plan is a small step in between.
pub const PLANS: &[PlanDef] = &[
    PlanDef {
        id: "starter_monthly",
        name: "Starter (monthly)",
        tier: Tier::Starter,
        interval: Interval::Month,
        amount: 2_900,
    },
    PlanDef {
        id: "starter_annual",
        name: "Starter (annual)",
        tier: Tier::Starter,
        interval: Interval::Year,
        amount: 29_000,
    },
    PlanDef {
        id: "professional_monthly",
        name: "Professional (monthly)",
        tier: Tier::Professional,
        interval: Interval::Month,
        amount: 9_900,
    },
    PlanDef {
        id: "professional_quarterly",
        name: "Professional (quarterly)",
        tier: Tier::Professional,
        interval: Interval::Quarter,
        amount: 27_900,
    },
    PlanDef {
        id: "professional_annual",
        name: "Professional (annual)",
        tier: Tier::Professional,
        interval: Interval::Year,
        amount: 99_000,
    },
    PlanDef {
        id: "enterprise_monthly",
        name: "Enterprise (monthly)",
        tier: Tier::Enterprise,
        interval: Interval::Month,
        amount: 49_900,
    },
    PlanDef {
        id: "enterprise_annual",
        name: "Enterprise (annual)",
        tier: Tier::Enterprise,
        interval: Interval::Year,
        amount: 499_000,
    },
];

pub const CURRENCY: &str = "USD";

/// Index into [`PLANS`] of the plan of `tier` billed every `interval`, falling back to
/// monthly where the tier has no such plan.
pub fn plan_index(tier: Tier, interval: Interval) -> usize {
    PLANS
        .iter()
        .position(|p| p.tier == tier && p.interval == interval)
        .or_else(|| {
            PLANS
                .iter()
                .position(|p| p.tier == tier && p.interval == Interval::Month)
        })
        .expect("every tier has a monthly plan")
}

pub fn plans() -> Vec<Plan> {
    PLANS
        .iter()
        .map(|p| Plan {
            id: p.id.to_string(),
            name: p.name.to_string(),
            tier: p.tier.as_str().to_string(),
            interval: p.interval,
            amount: p.amount,
            currency: CURRENCY.to_string(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// Chat front end: one call per message, priced by the model behind it.
    OpenWebui,
    /// The API gateway to the LLM providers, metered in tokens.
    LlmInference,
    Storage,
    Bandwidth,
    Search,
}

pub struct ServiceDef {
    pub kind: ServiceKind,
    pub name: &'static str,
    pub display_name: &'static str,
    pub unit_type: &'static str,
    /// Share of a typical customer's calls, before per-customer variation.
    pub weight: f64,
    /// Share of customers who use the service at all.
    pub adoption: f64,
}

pub const SERVICES: &[ServiceDef] = &[
    ServiceDef {
        kind: ServiceKind::OpenWebui,
        name: "open-webui",
        display_name: "Open WebUI",
        unit_type: "api_calls",
        weight: 25.0,
        adoption: 0.65,
    },
    ServiceDef {
        kind: ServiceKind::LlmInference,
        name: "llm_inference",
        display_name: "LLM Inference API",
        unit_type: "tokens",
        weight: 40.0,
        adoption: 0.9,
    },
    ServiceDef {
        kind: ServiceKind::Storage,
        name: "storage",
        display_name: "Object Storage",
        unit_type: "gb",
        weight: 9.0,
        adoption: 0.5,
    },
    ServiceDef {
        kind: ServiceKind::Bandwidth,
        name: "bandwidth",
        display_name: "Bandwidth",
        unit_type: "gb",
        weight: 11.0,
        adoption: 0.45,
    },
    ServiceDef {
        kind: ServiceKind::Search,
        name: "search",
        display_name: "Vector Search",
        unit_type: "queries",
        weight: 15.0,
        adoption: 0.45,
    },
];

pub fn services() -> Vec<Service> {
    SERVICES
        .iter()
        .map(|s| Service {
            name: s.name.to_string(),
            display_name: Some(s.display_name.to_string()),
            unit_type: Some(s.unit_type.to_string()),
            health_url: None,
        })
        .collect()
}

pub struct ChannelDef {
    pub name: &'static str,
    /// Share of signups.
    pub weight: f64,
    /// Months into the dataset before the channel exists (partners come later).
    pub from_month: usize,
    /// Fixed monthly spend and spend per signup, USD cents.
    pub base_spend: i64,
    pub spend_per_signup: i64,
    /// Trial conversion relative to the average.
    pub conversion: f64,
    /// Whether signups lean to larger tiers.
    pub upmarket: bool,
}

pub const CHANNELS: &[ChannelDef] = &[
    ChannelDef {
        name: "organic",
        weight: 30.0,
        from_month: 0,
        base_spend: 0,
        spend_per_signup: 0,
        conversion: 1.0,
        upmarket: false,
    },
    ChannelDef {
        name: "google_ads",
        weight: 22.0,
        from_month: 0,
        base_spend: 80_000,
        spend_per_signup: 80_000,
        conversion: 0.85,
        upmarket: false,
    },
    ChannelDef {
        name: "linkedin",
        weight: 11.0,
        from_month: 2,
        base_spend: 50_000,
        spend_per_signup: 140_000,
        conversion: 0.95,
        upmarket: true,
    },
    ChannelDef {
        name: "content",
        weight: 14.0,
        from_month: 0,
        base_spend: 300_000,
        spend_per_signup: 30_000,
        conversion: 1.0,
        upmarket: false,
    },
    ChannelDef {
        name: "referral",
        weight: 12.0,
        from_month: 0,
        base_spend: 0,
        spend_per_signup: 25_000,
        conversion: 1.2,
        upmarket: false,
    },
    ChannelDef {
        name: "partner",
        weight: 11.0,
        from_month: 6,
        base_spend: 20_000,
        spend_per_signup: 60_000,
        conversion: 1.1,
        upmarket: true,
    },
];

pub struct ModelDef {
    pub model: &'static str,
    pub provider: &'static str,
    pub weight: f64,
    /// Time to first token, ms.
    pub base_latency: f64,
    /// Generation time per output token, ms.
    pub per_token_ms: f64,
    /// Whether the provider offers prompt caching (cache read tokens).
    pub prompt_cache: bool,
}

/// `llama-3.1-70b` is deliberately missing from the built-in price table: a real gateway
/// routes some traffic to models nobody priced, and the analytics report it as unpriced.
pub const MODELS: &[ModelDef] = &[
    ModelDef {
        model: "gpt-4o-mini",
        provider: "openai",
        weight: 24.0,
        base_latency: 280.0,
        per_token_ms: 7.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "gpt-4o",
        provider: "openai",
        weight: 16.0,
        base_latency: 420.0,
        per_token_ms: 14.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "gpt-4.1-mini",
        provider: "openai",
        weight: 5.0,
        base_latency: 300.0,
        per_token_ms: 8.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "claude-3-5-sonnet",
        provider: "anthropic",
        weight: 15.0,
        base_latency: 650.0,
        per_token_ms: 16.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "claude-3-5-haiku",
        provider: "anthropic",
        weight: 10.0,
        base_latency: 380.0,
        per_token_ms: 8.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "claude-sonnet-4",
        provider: "anthropic",
        weight: 2.0,
        base_latency: 700.0,
        per_token_ms: 15.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "gemini-1.5-flash",
        provider: "google",
        weight: 11.0,
        base_latency: 250.0,
        per_token_ms: 4.5,
        prompt_cache: false,
    },
    ModelDef {
        model: "gemini-2.0-flash",
        provider: "google",
        weight: 5.0,
        base_latency: 230.0,
        per_token_ms: 4.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "mistral-small-latest",
        provider: "mistral",
        weight: 7.0,
        base_latency: 300.0,
        per_token_ms: 9.0,
        prompt_cache: false,
    },
    ModelDef {
        model: "deepseek-chat",
        provider: "deepseek",
        weight: 3.5,
        base_latency: 900.0,
        per_token_ms: 20.0,
        prompt_cache: true,
    },
    ModelDef {
        model: "llama-3.1-70b",
        provider: "together",
        weight: 1.0,
        base_latency: 350.0,
        per_token_ms: 9.0,
        prompt_cache: false,
    },
];

pub const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "google",
    "mistral",
    "deepseek",
    "together",
];
