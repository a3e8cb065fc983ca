package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// BudgetRequest sets a namespace's monthly budget: an amount in the
// currency of its prices, the percentages of it whose crossing (by the
// month's spend or its forecast) is notified to the namespace's
// subscriptions on "budget", and whether reaching it refuses the
// namespace's invocations (429 BudgetExceeded) until the month ends or
// the budget is raised.
type BudgetRequest struct {
	Monthly   float64 `json:"monthly"`
	Notify    []int   `json:"notify,omitempty"`
	HardLimit bool    `json:"hard_limit,omitempty"`
}

// Budget is a namespace's budget with this month's state: the alerts
// sent, whether the spend reached it, and the spend and forecast now.
type Budget struct {
	Namespace string    `json:"namespace"`
	Monthly   float64   `json:"monthly"`
	Notify    []int     `json:"notify,omitempty"`
	HardLimit bool      `json:"hard_limit,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	Month     string    `json:"month,omitempty"`
	Alerts    []string  `json:"alerts,omitempty"`
	Exceeded  bool      `json:"exceeded,omitempty"`
	Currency  string    `json:"currency"`
	Spent     float64   `json:"spent"`
	Forecast  float64   `json:"forecast"`
}

// Budgets lists the namespace's budget (none or one), or every
// namespace's for an admin with all.
func (c *Client) Budgets(ctx context.Context, all bool) ([]Budget, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"1"}}
	}
	var out struct {
		Budgets []Budget `json:"budgets"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/budgets", q, nil, &out)
	return out.Budgets, err
}

// SetBudget (admin) sets namespace ns's budget.
func (c *Client) SetBudget(ctx context.Context, ns string, b BudgetRequest) (Budget, error) {
	var out Budget
	_, err := c.doJSON(ctx, http.MethodPut, "/v1/namespaces/"+url.PathEscape(ns)+"/budget", nil, b, &out)
	return out, err
}

// DeleteBudget (admin) removes namespace ns's budget.
func (c *Client) DeleteBudget(ctx context.Context, ns string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/namespaces/"+url.PathEscape(ns)+"/budget", nil, nil, nil)
	return err
}

// BudgetAlert is what a subscription on "budget" receives (as
// "budget_alert"): a threshold of a namespace's budget crossed in a
// month, by the month's spend or by its forecast.
type BudgetAlert struct {
	Namespace string  `json:"namespace"`
	Month     string  `json:"month"`
	Kind      string  `json:"kind"`      // "spend" or "forecast"
	Threshold int     `json:"threshold"` // percent of Monthly
	Monthly   float64 `json:"monthly"`
	Amount    float64 `json:"amount"`
	Currency  string  `json:"currency"`
}
