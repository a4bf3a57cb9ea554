/*
 * botgw's mini app bridge, served at /webapp.js: window.Telegram.WebApp (also
 * window.Botgw.WebApp) for a bot's web app framed by a botgw page.
 *
 * Init data comes as Telegram passes it, in the frame URL's fragment:
 * #tgWebAppData=<urlencoded init data>&tgWebAppThemeParams=<json>. The bridge talks
 * to the page that framed it with Telegram's web events:
 * window.parent.postMessage(JSON.stringify({eventType, eventData}), "*") for
 * web_app_ready, web_app_expand, web_app_close, web_app_data_send {data} and
 * web_app_setup_main_button {is_visible, text}; the page answers
 * {eventType: "main_button_pressed"} and
 * {eventType: "theme_changed", eventData: {theme_params}}. See docs/webapps.md.
 */
(function () {
  "use strict";

  var MAX_DATA_BYTES = 4096;
  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  var initData = fragment.get("tgWebAppData") || "";

  function parseJson(text, fallback) {
    try {
      var value = JSON.parse(text);
      return value && typeof value === "object" ? value : fallback;
    } catch (error) {
      return fallback;
    }
  }

  function parseInitData(text) {
    var out = {};
    new URLSearchParams(text).forEach(function (value, key) {
      if (key === "user" || key === "receiver" || key === "chat") {
        out[key] = parseJson(value, value);
      } else if (key === "auth_date" || key === "can_send_after") {
        out[key] = Number(value);
      } else {
        out[key] = value;
      }
    });
    return out;
  }

  function schemeOf(theme) {
    var match = /^#([0-9a-f]{6})$/i.exec(theme.bg_color || "");
    if (!match) {
      return "light";
    }
    var rgb = parseInt(match[1], 16);
    var luma = 0.299 * (rgb >> 16) + 0.587 * ((rgb >> 8) & 255) + 0.114 * (rgb & 255);
    return luma < 128 ? "dark" : "light";
  }

  function post(eventType, eventData) {
    if (window.parent === window) {
      return; // not framed: nobody to talk to
    }
    var message = JSON.stringify({ eventType: eventType, eventData: eventData || {} });
    window.parent.postMessage(message, "*");
  }

  var handlers = {};

  function onEvent(name, callback) {
    if (typeof callback !== "function") {
      return;
    }
    (handlers[name] = handlers[name] || []).push(callback);
  }

  function offEvent(name, callback) {
    var list = handlers[name] || [];
    var index = list.indexOf(callback);
    if (index >= 0) {
      list.splice(index, 1);
    }
  }

  function emit(name) {
    (handlers[name] || []).slice().forEach(function (callback) {
      try {
        callback.call(WebApp);
      } catch (error) {
        setTimeout(function () {
          throw error;
        });
      }
    });
  }

  var MainButton = {
    text: "CONTINUE",
    isVisible: false,
    isActive: true,
    setText: function (text) {
      MainButton.text = String(text).slice(0, 64);
      sync();
      return MainButton;
    },
    show: function () {
      MainButton.isVisible = true;
      sync();
      return MainButton;
    },
    hide: function () {
      MainButton.isVisible = false;
      sync();
      return MainButton;
    },
    onClick: function (callback) {
      onEvent("mainButtonClicked", callback);
      return MainButton;
    },
    offClick: function (callback) {
      offEvent("mainButtonClicked", callback);
      return MainButton;
    },
  };

  function sync() {
    post("web_app_setup_main_button", {
      is_visible: MainButton.isVisible,
      text: MainButton.text,
    });
  }

  var theme = parseJson(fragment.get("tgWebAppThemeParams") || "{}", {});

  var WebApp = {
    initData: initData,
    initDataUnsafe: parseInitData(initData),
    themeParams: theme,
    colorScheme: schemeOf(theme),
    version: "7.0",
    platform: "botgw",
    isExpanded: false,
    MainButton: MainButton,
    ready: function () {
      post("web_app_ready");
    },
    expand: function () {
      WebApp.isExpanded = true;
      post("web_app_expand");
    },
    close: function () {
      post("web_app_close");
    },
    sendData: function (data) {
      var text = String(data);
      if (!text.length || new TextEncoder().encode(text).length > MAX_DATA_BYTES) {
        throw new Error("WebAppDataInvalid: data must be 1-4096 bytes");
      }
      post("web_app_data_send", { data: text });
    },
    onEvent: onEvent,
    offEvent: offEvent,
  };

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) {
      return; // only the page that framed the app speaks for it
    }
    var message = typeof event.data === "string" ? parseJson(event.data, null) : event.data;
    if (!message || typeof message.eventType !== "string") {
      return;
    }
    if (message.eventType === "main_button_pressed") {
      emit("mainButtonClicked");
    } else if (message.eventType === "theme_changed") {
      var params = message.eventData && message.eventData.theme_params;
      if (params && typeof params === "object") {
        WebApp.themeParams = params;
        WebApp.colorScheme = schemeOf(params);
        emit("themeChanged");
      }
    }
  });

  window.Telegram = window.Telegram || {};
  window.Telegram.WebApp = WebApp;
  window.Botgw = window.Botgw || {};
  window.Botgw.WebApp = WebApp;
})();
