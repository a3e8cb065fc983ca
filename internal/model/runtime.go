package model

// RuntimeOffer is a Python runtime and the healthy workers that offer it.
type RuntimeOffer struct {
	Name    string   `json:"name"`    // python3.N
	Workers []string `json:"workers"` // worker IDs, sorted
}
