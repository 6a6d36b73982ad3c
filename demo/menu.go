package demo

import (
	"slices"
	"time"
)

// Menu courses, used as the product category of dishes.
const (
	CourseMezze    = "mezze"
	CourseBread    = "bread"
	CourseGrill    = "grill"
	CourseMains    = "mains"
	CourseDesserts = "desserts"
	CourseHot      = "hot drinks"
	CourseSoft     = "soft drinks"
	CourseWine     = "wine"
	CourseSpirits  = "spirits"
)

// Seasons of the restaurant's seasonal menu, by month in Los Angeles.
const (
	Spring = "spring" // March to May
	Summer = "summer" // June to August
	Autumn = "autumn" // September to November
	Winter = "winter" // December to February
)

// Dish is one item on the restaurant group's menu. Prices are in USD.
type Dish struct {
	ID     string  `json:"product_id"`
	Name   string  `json:"name"`
	Course string  `json:"category"`
	Price  float64 `json:"price"`
	// Season is "" for dishes served all year, else the season of the
	// seasonal menu that carries the dish.
	Season string `json:"season,omitempty"`
}

// SeasonAt returns the restaurant season at t, judged by t's date in
// Los Angeles.
func SeasonAt(t time.Time) string {
	switch t.In(restaurantZone).Month() {
	case time.March, time.April, time.May:
		return Spring
	case time.June, time.July, time.August:
		return Summer
	case time.September, time.October, time.November:
		return Autumn
	}
	return Winter
}

// Available reports whether the dish is on the menu at t.
func (d Dish) Available(t time.Time) bool { return d.Season == "" || d.Season == SeasonAt(t) }

var menu = []Dish{
	{"m-hummus", "Hummus with Lavash", CourseMezze, 9, ""},
	{"m-eech", "Eech (Bulgur & Tomato Salad)", CourseMezze, 9, ""},
	{"m-jajik", "Jajik (Yogurt & Cucumber)", CourseMezze, 8, ""},
	{"m-basturma", "Basturma Plate", CourseMezze, 16, ""},
	{"m-cheese", "Armenian Cheese Plate (Chechil, Lori)", CourseMezze, 15, ""},
	{"m-dolma", "Dolma in Grape Leaves", CourseMezze, 13, ""},
	{"m-cabbage-dolma", "Cabbage Dolma", CourseMezze, 13, ""},
	{"m-byorek", "Spinach & Cheese Byorek", CourseMezze, 11, ""},
	{"m-lahmajun", "Lahmajun", CourseBread, 8, ""},
	{"m-khachapuri", "Khachapuri", CourseBread, 16, ""},
	{"m-lavash", "Fresh Lavash Basket", CourseBread, 4, ""},
	{"m-matnakash", "Matnakash", CourseBread, 5, ""},
	{"m-pork-khorovats", "Pork Khorovats", CourseGrill, 27, ""},
	{"m-lamb-khorovats", "Lamb Khorovats", CourseGrill, 32, ""},
	{"m-chicken-khorovats", "Chicken Khorovats", CourseGrill, 24, ""},
	{"m-lule", "Lule Kebab", CourseGrill, 23, ""},
	{"m-veg-khorovats", "Vegetable Khorovats", CourseGrill, 19, ""},
	{"m-manti", "Manti with Garlic Yogurt", CourseMains, 22, ""},
	{"m-khashlama", "Lamb Khashlama", CourseMains, 28, ""},
	{"m-kufta", "Kufta in Broth", CourseMains, 24, ""},
	{"m-tolma-plate", "Tolma Platter", CourseMains, 25, ""},
	{"m-gata", "Gata", CourseDesserts, 8, ""},
	{"m-pakhlava", "Pakhlava", CourseDesserts, 9, ""},
	{"m-nazook", "Nazook", CourseDesserts, 7, ""},
	{"m-coffee", "Armenian Coffee", CourseHot, 5, ""},
	{"m-thyme-tea", "Mountain Thyme Tea", CourseHot, 5, ""},
	{"m-tan", "Tan (Salted Yogurt Drink)", CourseSoft, 5, ""},
	{"m-jermuk", "Jermuk Mineral Water", CourseSoft, 6, ""},
	{"m-apricot-juice", "Apricot Juice", CourseSoft, 6, ""},
	{"m-areni-glass", "Areni Noir (Glass)", CourseWine, 15, ""},
	{"m-voskehat-glass", "Voskehat (Glass)", CourseWine, 14, ""},
	{"m-areni-bottle", "Areni Noir (Bottle)", CourseWine, 58, ""},
	{"m-kangun-bottle", "Kangun (Bottle)", CourseWine, 52, ""},
	{"m-pomegranate-wine", "Pomegranate Wine (Glass)", CourseWine, 13, ""},
	{"m-ararat-brandy", "Armenian Brandy, 10 Years", CourseSpirits, 18, ""},
	// Seasonal menus.
	{"m-jingalov", "Jingalov Hats (Herb Flatbread)", CourseBread, 15, Spring},
	{"m-aveluk", "Aveluk (Wild Sorrel) Salad", CourseMezze, 12, Spring},
	{"m-spring-lamb", "Spring Lamb with Tarragon", CourseMains, 34, Spring},
	{"m-ishkhan", "Ishkhan Trout Khorovats", CourseGrill, 31, Summer},
	{"m-apricot-salad", "Apricot, Mint & Walnut Salad", CourseMezze, 12, Summer},
	{"m-cold-spas", "Chilled Tahnov Spas", CourseMezze, 9, Summer},
	{"m-ghapama", "Ghapama (Stuffed Pumpkin)", CourseMains, 29, Autumn},
	{"m-pumpkin-manti", "Pumpkin Manti", CourseMains, 23, Autumn},
	{"m-harvest-dolma", "Harvest Dolma (Stuffed Vegetables)", CourseMezze, 14, Autumn},
	{"m-harissa", "Harissa (Wheat & Chicken Porridge)", CourseMains, 21, Winter},
	{"m-khash", "Khash (Winter Broth)", CourseMains, 22, Winter},
	{"m-anoushabour", "Anoushabour", CourseDesserts, 9, Winter},
}

// Menu returns the restaurant group's menu (a fresh copy), in a fixed order.
func Menu() []Dish { return slices.Clone(menu) }

// Location is one of the restaurant group's restaurants.
type Location struct {
	Name     string `json:"name"`     // "Glendale"
	Store    string `json:"store"`    // Event.Store of its events
	SourceID string `json:"sourceId"` // its POS source
	// weight is its share of guests calling it home.
	weight float64
}

var locations = []Location{
	{"Glendale", "glendale", SourcePOSGlendale, 0.45},
	{"Pasadena", "pasadena", SourcePOSPasadena, 0.30},
	{"Downtown LA", "downtown-la", SourcePOSDowntownLA, 0.25},
}

// Locations returns the restaurant group's locations.
func Locations() []Location { return slices.Clone(locations) }

// menuIndex groups menu positions by course and season.
type menuIndex struct {
	course map[string][]int // all-year dishes by course
	season map[string][]int // seasonal dishes by season
}

func newMenuIndex() *menuIndex {
	x := &menuIndex{course: map[string][]int{}, season: map[string][]int{}}
	for i, d := range menu {
		if d.Season != "" {
			x.season[d.Season] = append(x.season[d.Season], i)
			continue
		}
		x.course[d.Course] = append(x.course[d.Course], i)
	}
	return x
}
