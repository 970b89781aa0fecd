package spec

import (
	"fmt"
	"testing"
)

func TestTemplateSizeKeepsOrientationAndNeverUpscales(t *testing.T) {
	sd, hd, uhd := DefaultTemplates()[0], DefaultTemplates()[1], DefaultTemplates()[2]
	for _, tc := range []struct {
		tpl        Template
		srcW, srcH int
		w, h       int
	}{
		{sd, 1280, 720, 640, 360},
		{hd, 1280, 720, 960, 540},
		{uhd, 1280, 720, 1280, 720},
		{sd, 720, 1280, 360, 640}, // portrait stays portrait
		{hd, 720, 1280, 540, 960},
		{uhd, 1920, 1080, 1280, 720},
		{uhd, 640, 360, 640, 360},  // never upscaled
		{hd, 480, 854, 480, 854},   // portrait, smaller than the template
		{sd, 1440, 1080, 480, 360}, // 4:3
		{sd, 1000, 1000, 360, 360}, // square
		{sd, 853, 480, 640, 360},   // 853×480 → 639.8: rounded, then even
		{sd, 1280, 536, 860, 360},  // 2.39:1: 859.7 rounds to 860
	} {
		t.Run(fmt.Sprintf("%s_%dx%d", tc.tpl.Name, tc.srcW, tc.srcH), func(t *testing.T) {
			w, h := tc.tpl.Size(tc.srcW, tc.srcH)
			if w != tc.w || h != tc.h {
				t.Fatalf("Size(%d, %d) = %dx%d, want %dx%d", tc.srcW, tc.srcH, w, h, tc.w, tc.h)
			}
		})
	}
}

func TestDefaultTemplatesFollowTheSeed(t *testing.T) {
	want := map[string][2]int{"sd": {360, 800}, "hd": {540, 1000}, "uhd": {720, 1800}}
	tpls := DefaultTemplates()
	if len(tpls) != len(want) {
		t.Fatalf("%d default templates, want %d", len(tpls), len(want))
	}
	for _, tpl := range tpls {
		if err := tpl.Validate(); err != nil {
			t.Fatal(err)
		}
		if w := want[tpl.Name]; tpl.ShortSide != w[0] || tpl.VideoKbps != w[1] {
			t.Errorf("%s: %dp %d kbps, want %dp %d kbps", tpl.Name, tpl.ShortSide, tpl.VideoKbps, w[0], w[1])
		}
		if tpl.AudioKbps < 64 || tpl.AudioKbps > 128 {
			t.Errorf("%s: AAC %d kbps outside 64–128", tpl.Name, tpl.AudioKbps)
		}
	}
	if _, ok := FindTemplate(tpls, "hd"); !ok {
		t.Error("FindTemplate(hd) not found")
	}
}

func TestTemplateValidateRefuses(t *testing.T) {
	good := Template{Name: "mobile", ShortSide: 240, VideoKbps: 300, AudioKbps: 48}
	if err := good.Validate(); err != nil {
		t.Fatalf("a user template: %v", err)
	}
	for name, mutate := range map[string]func(*Template){
		"empty name":       func(t *Template) { t.Name = "" },
		"path in name":     func(t *Template) { t.Name = "../x" },
		"tiny short side":  func(t *Template) { t.ShortSide = 8 },
		"no video bitrate": func(t *Template) { t.VideoKbps = 0 },
		"huge audio":       func(t *Template) { t.AudioKbps = 5000 },
		"negative fps":     func(t *Template) { t.MaxFPS = -1 },
	} {
		tpl := good
		mutate(&tpl)
		if tpl.Validate() == nil {
			t.Errorf("%s: accepted %+v", name, tpl)
		}
	}
}
